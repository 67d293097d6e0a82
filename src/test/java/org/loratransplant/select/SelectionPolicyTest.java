package org.loratransplant.select;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

class SelectionPolicyTest {
  private static final int[] EOS = {2};
  // "False\n" + EOS as tok512 (stories260K) splits it; excess made up, structure largest as
  // measured on the real runs.
  private static final String[] FALSE_PIECES = {"▁", "F", "a", "l", "se", "\n", "</s>"};
  private static final int[] FALSE_IDS = {410, 453, 412, 421, 372, 13, 2};
  private static final float[] FALSE_EXCESS = {0.2f, 0.5f, 0.1f, 0.9f, 1.1f, 2.5f, 4.0f};

  private static SelectionPolicy policy(TokenMode m, double k, StructuralPolicy st) {
    return new SelectionPolicy(m, k, SelectionScope.SAMPLE, st, 0L, false);
  }

  private static float[] onFalse(SelectionPolicy p) {
    return p.mask(FALSE_EXCESS, FALSE_PIECES, FALSE_IDS, EOS, 1L);
  }

  @Test
  void thePapersTopKDropsTheStartOfTheAnswer() {
    // floor(0.7 x 7) = 4 largest: 4.0 (eos), 2.5 (\n), 1.1 (se), 0.9 (l).
    assertArrayEquals(new float[] {0, 0, 0, 1, 1, 1, 1}, onFalse(SelectionPolicy.paper(70)));
  }

  @Test
  void topKWithStructureKeptRanksTheFiveContentPieces() {
    // \n and eos kept; floor(0.7 x 5) = 3 of the content: 1.1 (se), 0.9 (l), 0.5 (F).
    assertArrayEquals(new float[] {0, 1, 0, 1, 1, 1, 1},
        onFalse(policy(TokenMode.TOP_K, 70, StructuralPolicy.KEEP)));
    assertArrayEquals(new float[] {0, 1, 0, 1, 1, 0, 0},
        onFalse(policy(TokenMode.TOP_K, 70, StructuralPolicy.DROP)));
  }

  @Test
  void wordModeKeepsTheWholeOneWordAnswer() {
    // One word "▁False": max(1, floor(0.7 x 1)) = 1 word = all five pieces.
    assertArrayEquals(new float[] {1, 1, 1, 1, 1, 1, 1},
        onFalse(policy(TokenMode.WORD, 70, StructuralPolicy.KEEP)));
    assertArrayEquals(new float[] {1, 1, 1, 1, 1, 0, 0},
        onFalse(policy(TokenMode.WORD, 70, StructuralPolicy.DROP)));
    // Ranked: units are the word (mean 0.56), \n (2.5), eos (4.0); floor(0.7 x 3) = 2 -> the
    // structure wins, unless one content unit is required.
    assertArrayEquals(new float[] {0, 0, 0, 0, 0, 1, 1},
        onFalse(policy(TokenMode.WORD, 70, StructuralPolicy.RANK)));
    assertArrayEquals(new float[] {1, 1, 1, 1, 1, 1, 1}, onFalse(new SelectionPolicy(
        TokenMode.WORD, 70, SelectionScope.SAMPLE, StructuralPolicy.RANK, 0L, true)));
  }

  @Test
  void allKeepsEveryTokenButHonoursDrop() {
    assertArrayEquals(new float[] {1, 1, 1, 1, 1, 1, 1},
        onFalse(policy(TokenMode.ALL, 30, StructuralPolicy.RANK)));
    assertArrayEquals(new float[] {1, 1, 1, 1, 1, 1, 1},
        onFalse(policy(TokenMode.ALL, 30, StructuralPolicy.KEEP)));
    assertArrayEquals(new float[] {1, 1, 1, 1, 1, 0, 0},
        onFalse(policy(TokenMode.ALL, 30, StructuralPolicy.DROP)));
  }

  @Test
  void atLeastOneContentTokenAddsTheBestContentPiece() {
    // floor(0.3 x 7) = 2: eos and \n; the rule adds the best content piece, se (1.1).
    SelectionPolicy p = new SelectionPolicy(TokenMode.TOP_K, 30, SelectionScope.SAMPLE,
        StructuralPolicy.RANK, 0L, true);
    assertArrayEquals(new float[] {0, 0, 0, 0, 1, 1, 1}, onFalse(p));
    // A one-token content answer under drop: floor(0.7 x 1) = 0, the rule keeps it.
    float[] m = new SelectionPolicy(TokenMode.TOP_K, 70, SelectionScope.SAMPLE,
        StructuralPolicy.DROP, 0L, true).mask(new float[] {0.1f, 3f}, new String[] {"▁x", "</s>"},
        new int[] {5, 2}, EOS, 9L);
    assertArrayEquals(new float[] {1, 0}, m);
  }

  @Test
  void wordModeRanksWordsByTheirMeanExcess() {
    // "▁True or ▁False\n" + eos: words ▁T ru e (mean 2.0), ▁or (0.5), ▁F alse (1.5).
    String[] pieces = {"▁T", "ru", "e", "▁or", "▁F", "alse", "\n", "</s>"};
    int[] ids = {274, 300, 301, 302, 303, 304, 13, 2};
    float[] ex = {1f, 3f, 2f, 0.5f, 1f, 2f, 5f, 6f};
    // floor(0.7 x 3) = 2 words: ▁True and ▁False.
    assertArrayEquals(new float[] {1, 1, 1, 0, 1, 1, 1, 1},
        policy(TokenMode.WORD, 70, StructuralPolicy.KEEP).mask(ex, pieces, ids, EOS, 1L));
    // floor(0.3 x 3) = 0 -> at least one word: ▁True.
    assertArrayEquals(new float[] {1, 1, 1, 0, 0, 0, 1, 1},
        policy(TokenMode.WORD, 30, StructuralPolicy.KEEP).mask(ex, pieces, ids, EOS, 1L));
    // Tied means go to the earlier word: ▁or raised to 2.0 still loses to ▁True.
    ex[3] = 2f;
    assertArrayEquals(new float[] {1, 1, 1, 0, 0, 0, 0, 0},
        policy(TokenMode.WORD, 30, StructuralPolicy.DROP).mask(ex, pieces, ids, EOS, 1L));
  }

  @Test
  void groupScopeRanksOverTheFlattenedGroup() {
    List<ScoredResponse> g = List.of(
        new ScoredResponse(10L, new float[] {1f, 5f, 9f}, new String[] {"▁a", "b", "</s>"},
            new int[] {20, 21, 2}),
        new ScoredResponse(11L, new float[] {3f, 9f}, new String[] {"▁c", "</s>"},
            new int[] {22, 2}));
    // Content units a(1), b(5), c(3); floor(0.7 x 3) = 2 -> b, c.
    List<float[]> m = group(TokenMode.TOP_K, 70, false).maskGroup(g, EOS);
    assertArrayEquals(new float[] {0, 1, 1}, m.get(0));
    assertArrayEquals(new float[] {1, 1}, m.get(1));
    // floor(0.5 x 3) = 1 -> b only; the second sample keeps no content ...
    m = group(TokenMode.TOP_K, 50, false).maskGroup(g, EOS);
    assertArrayEquals(new float[] {0, 1, 1}, m.get(0));
    assertArrayEquals(new float[] {0, 1}, m.get(1));
    // ... unless the rule asks for one: its best, c.
    m = group(TokenMode.TOP_K, 50, true).maskGroup(g, EOS);
    assertArrayEquals(new float[] {1, 1}, m.get(1));
    // Per sample, k 50: the first keeps floor(1) = b, the second floor(0.5) = nothing.
    SelectionPolicy perSample = new SelectionPolicy(TokenMode.TOP_K, 50, SelectionScope.SAMPLE,
        StructuralPolicy.KEEP, 0L, false);
    m = perSample.maskGroup(g, EOS);
    assertArrayEquals(new float[] {0, 1, 1}, m.get(0));
    assertArrayEquals(new float[] {0, 1}, m.get(1));
  }

  private static SelectionPolicy group(TokenMode mode, double k, boolean oneContent) {
    return new SelectionPolicy(mode, k, SelectionScope.GROUP, StructuralPolicy.KEEP, 0L,
        oneContent);
  }

  @Test
  void thePaperPolicyMatchesTokenSelectionPerSampleAndPerGroup() {
    Random rnd = new Random(42);
    for (int trial = 0; trial < 200; trial++) {
      List<ScoredResponse> g = new ArrayList<>();
      List<float[]> scores = new ArrayList<>();
      int size = 1 + rnd.nextInt(4);
      for (int s = 0; s < size; s++) {
        int n = 1 + rnd.nextInt(9);
        float[] ex = new float[n];
        for (int i = 0; i < n; i++) {
          ex[i] = rnd.nextInt(5) - 2; // few distinct values: many ties
        }
        String[] pieces = new String[n];
        Arrays.fill(pieces, "x");
        g.add(new ScoredResponse(s, ex, pieces, new int[n]));
        scores.add(ex);
      }
      double k = 1 + rnd.nextInt(100);
      assertArrayEquals(TokenSelection.perSample(scores.get(0), k),
          SelectionPolicy.paper(k).mask(scores.get(0), g.get(0).pieces(), g.get(0).ids(), EOS,
              0L), "trial " + trial);
      SelectionPolicy grouped = new SelectionPolicy(TokenMode.TOP_K, k, SelectionScope.GROUP,
          StructuralPolicy.RANK, 0L, false);
      List<float[]> expected = TokenSelection.perGroup(scores, k);
      List<float[]> actual = grouped.maskGroup(g, EOS);
      for (int s = 0; s < size; s++) {
        assertArrayEquals(expected.get(s), actual.get(s), "trial " + trial + " sample " + s);
      }
    }
  }

  @Test
  void randomKeepsTopKsCountReproduciblyAndDiffersAcrossSamples() {
    int n = 20;
    float[] ex = new float[n];
    String[] pieces = new String[n];
    Arrays.fill(pieces, "x");
    pieces[n - 1] = "</s>";
    int[] ids = new int[n];
    ids[n - 1] = 2;
    SelectionPolicy p = new SelectionPolicy(TokenMode.RANDOM, 50, SelectionScope.SAMPLE,
        StructuralPolicy.KEEP, 123L, false);
    float[] a = p.mask(ex, pieces, ids, EOS, 1L);
    // eos kept + floor(0.5 x 19) = 9 random content tokens.
    assertEquals(1f, a[n - 1]);
    assertEquals(10f, sum(a));
    assertArrayEquals(a, p.mask(ex, pieces, ids, EOS, 1L), "same (seed, sample) -> same mask");
    assertFalse(Arrays.equals(a, p.mask(ex, pieces, ids, EOS, 2L)), "another sample id");
    SelectionPolicy otherSeed = new SelectionPolicy(TokenMode.RANDOM, 50, SelectionScope.SAMPLE,
        StructuralPolicy.KEEP, 124L, false);
    assertFalse(Arrays.equals(a, otherSeed.mask(ex, pieces, ids, EOS, 1L)), "another seed");
    // Random ignores the excess: a large score at position 0 changes nothing.
    float[] biased = ex.clone();
    biased[0] = 100f;
    assertArrayEquals(a, p.mask(biased, pieces, ids, EOS, 1L));
  }

  @Test
  void randomPositionsAreUniformOverSampleIds() {
    int n = 10;
    float[] ex = new float[n];
    String[] pieces = new String[n];
    Arrays.fill(pieces, "x");
    SelectionPolicy p = new SelectionPolicy(TokenMode.RANDOM, 30, SelectionScope.SAMPLE,
        StructuralPolicy.RANK, 7L, false);
    int draws = 3000;
    int[] kept = new int[n];
    for (long id = 0; id < draws; id++) {
      float[] m = p.mask(ex, pieces, new int[n], EOS, id);
      assertEquals(3f, sum(m), "floor(0.3 x 10) = 3 every time");
      for (int i = 0; i < n; i++) {
        kept[i] += (int) m[i];
      }
    }
    // Each position is kept with probability 0.3: 900 of 3000, sd ~25; 150 is six sd.
    for (int i = 0; i < n; i++) {
      assertTrue(Math.abs(kept[i] - 900) < 150, "position " + i + " kept " + kept[i]);
    }
  }

  @Test
  void randomInAGroupKeepsTheGroupsCount() {
    List<ScoredResponse> g = new ArrayList<>();
    for (int s = 0; s < 4; s++) {
      g.add(new ScoredResponse(100 + s, new float[5], new String[] {"a", "b", "c", "d", "e"},
          new int[5]));
    }
    SelectionPolicy p = new SelectionPolicy(TokenMode.RANDOM, 70, SelectionScope.GROUP,
        StructuralPolicy.RANK, 1L, false);
    List<float[]> m = p.maskGroup(g, EOS);
    float total = 0;
    for (float[] x : m) {
      total += sum(x);
    }
    assertEquals(14f, total, "floor(0.7 x 20)");
    List<float[]> again = p.maskGroup(g, EOS);
    for (int s = 0; s < 4; s++) {
      assertArrayEquals(m.get(s), again.get(s));
    }
    // Not merely each sample's top positions: the kept set is not 4 copies of one pattern.
    assertNotEquals(1, m.stream().map(Arrays::toString).distinct().count());
  }

  @Test
  void badSettingsAreNamed() {
    assertEquals("lt.select.token-mode must be one of top-k, all, random, word; got 'foo'",
        assertThrows(IllegalArgumentException.class,
            () -> SelectionPolicy.of("foo", 70, "sample", "keep", 0L, true)).getMessage());
    assertEquals("lt.select.scope must be one of sample, group; got 'batch'",
        assertThrows(IllegalArgumentException.class,
            () -> SelectionPolicy.of("top-k", 70, "batch", "keep", 0L, true)).getMessage());
    assertEquals("lt.select.structural must be one of keep, drop, rank; got 'none'",
        assertThrows(IllegalArgumentException.class,
            () -> SelectionPolicy.of("top-k", 70, "sample", "none", 0L, true)).getMessage());
    assertEquals("lt.select.k-percent must be in (0, 100]; got 0.0",
        assertThrows(IllegalArgumentException.class,
            () -> SelectionPolicy.of("word", 0, "sample", "keep", 0L, true)).getMessage());
    assertEquals(new SelectionPolicy(TokenMode.WORD, 70, SelectionScope.GROUP,
        StructuralPolicy.DROP, 5L, true), SelectionPolicy.of("word", 70, "group", "drop", 5L,
        true));
    assertEquals("sample 3: excess (2), pieces (1) and ids (2) differ in length",
        assertThrows(IllegalArgumentException.class, () -> SelectionPolicy.paper(70).mask(
            new float[2], new String[1], new int[2], EOS, 3L)).getMessage());
    assertEquals("sample 4: excess of token 1 is NaN",
        assertThrows(IllegalArgumentException.class, () -> SelectionPolicy.paper(70).mask(
            new float[] {0f, Float.NaN}, new String[] {"a", "b"}, new int[2], EOS, 4L))
            .getMessage());
  }

  private static float sum(float[] m) {
    float s = 0;
    for (float x : m) {
      s += x;
    }
    return s;
  }
}
