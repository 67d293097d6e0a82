package org.loratransplant.align;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The four propagation rules, special tokens, divergence and a randomised property. */
class TokenAlignmentTest {

  private static float[] align(String[] src, float[] scores, String[] tgt) {
    return TokenAlignment.align(src, scores, tgt).targetScores();
  }

  @Test
  void oneToOneCopies() {
    assertArrayEquals(new float[] {1, 0, 1},
        align(new String[] {" the", " cat", " sat"}, new float[] {1, 0, 1},
            new String[] {"▁the", "▁cat", "▁sat"}));
  }

  @Test
  void oneToManyCopiesToEveryTargetToken() {
    assertArrayEquals(new float[] {1, 1, 1, 0},
        align(new String[] {" unbelievable", " day"}, new float[] {1, 0},
            new String[] {" un", "believ", "able", " day"}));
  }

  @Test
  void manyToOneAverages() {
    assertArrayEquals(new float[] {2f / 3, 1},
        align(new String[] {" un", "believ", "able", "!"}, new float[] {1, 0, 1, 1},
            new String[] {" unbelievable", "!"}), 1e-6f);
  }

  @Test
  void manyToManyAveragesThenCopies() {
    // "abcd" as ab|cd on the source and a|bcd... no common boundary inside: one span.
    TokenAlignment.Result r = TokenAlignment.align(new String[] {"ab", "cd"},
        new float[] {1, 0}, new String[] {"a", "bc", "d"});
    assertArrayEquals(new float[] {0.5f, 0.5f, 0.5f}, r.targetScores(), 1e-6f);
    assertEquals(1, r.spans().size());
    assertEquals(new TokenAlignment.Span(0, 2, 0, 3, true), r.spans().get(0));
  }

  @Test
  void specialAndWhitespaceTokensJoinTheirNeighbours() {
    TokenAlignment.Result r = TokenAlignment.align(new String[] {"", " hi", "\n", " you", ""},
        new float[] {1, 1, 0, 0, 1}, new String[] {"hi", " ", "you", ""});
    // Spans: ["" hi] -> [hi]; ["\n" you] -> [" " you]; the trailing specials form a last span.
    assertEquals(1f, r.targetScores()[0]);
    assertEquals(0f, r.targetScores()[1]);
    assertEquals(0f, r.targetScores()[2]);
    assertEquals(new TokenAlignment.Span(0, 2, 0, 1, true), r.spans().get(0));
    assertEquals(new TokenAlignment.Span(2, 4, 1, 3, true), r.spans().get(1));
    assertEquals(4, r.spans().get(2).srcFrom());
    assertEquals(5, r.spans().get(2).srcTo());
  }

  @Test
  void divergentTextIsUnmatchedAndTheWalkResynchronises() {
    // The middle decodes differently (byte fallback vs a character): that span gets 0, the
    // rest aligns.
    TokenAlignment.Result r = TokenAlignment.align(new String[] {" ok", "\uFFFD", " fine"},
        new float[] {1, 1, 1}, new String[] {" ok", "é", " fine"});
    assertArrayEquals(new float[] {1, 0, 1}, r.targetScores());
    assertFalse(r.spans().get(1).matched());
    assertEquals(1, r.unmatchedTargetTokens());
  }

  @Test
  void totalMismatchGivesZeros() {
    assertArrayEquals(new float[] {0, 0},
        align(new String[] {"abc"}, new float[] {1}, new String[] {"xy", "z"}));
  }

  @Test
  void randomSplitsPartitionBothSidesAndAverageTheirSpan() {
    SplittableRandom rng = new SplittableRandom(7);
    for (int trial = 0; trial < 200; trial++) {
      StringBuilder text = new StringBuilder();
      int len = 5 + rng.nextInt(40);
      for (int i = 0; i < len; i++) {
        text.append((char) ('a' + rng.nextInt(5)));
      }
      String[] src = split(text.toString(), rng);
      String[] tgt = split(text.toString(), rng);
      float[] scores = new float[src.length];
      for (int i = 0; i < scores.length; i++) {
        scores[i] = rng.nextInt(2);
      }
      TokenAlignment.Result r = TokenAlignment.align(src, scores, tgt);
      int srcPos = 0;
      int tgtPos = 0;
      for (TokenAlignment.Span s : r.spans()) {
        assertEquals(srcPos, s.srcFrom());
        assertEquals(tgtPos, s.tgtFrom());
        assertTrue(s.matched(), "same text always aligns");
        double avg = 0;
        for (int i = s.srcFrom(); i < s.srcTo(); i++) {
          avg += scores[i];
        }
        avg /= s.srcTo() - s.srcFrom();
        for (int j = s.tgtFrom(); j < s.tgtTo(); j++) {
          assertEquals(avg, r.targetScores()[j], 1e-6);
        }
        srcPos = s.srcTo();
        tgtPos = s.tgtTo();
      }
      assertEquals(src.length, srcPos);
      assertEquals(tgt.length, tgtPos);
    }
  }

  private static String[] split(String text, SplittableRandom rng) {
    List<String> out = new ArrayList<>();
    int i = 0;
    while (i < text.length()) {
      int n = 1 + rng.nextInt(Math.min(4, text.length() - i));
      out.add(text.substring(i, i + n));
      i += n;
    }
    return out.toArray(new String[0]);
  }
}
