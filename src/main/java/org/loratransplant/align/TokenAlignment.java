package org.loratransplant.align;

import java.util.ArrayList;
import java.util.List;

/**
 * Carries per-token scores from one tokenization of a text to another (TiTok, section 1.5).
 *
 * <p>Each token is normalised as the TiTok authors' code does (decoded text with whitespace,
 * '\n', '\t' and the SentencePiece marker removed). Two pointers walk the sequences, growing a
 * span on whichever side has the shorter normalised text until both spans spell the same text.
 * Every source score in a matched span is averaged and the average copied to each target token of
 * the span, which is the paper's four rules in one: one-to-one copy, one-to-many copy,
 * many-to-one average, many-to-many average then copy. Tokens that normalise to "" (special
 * tokens, pure whitespace) join the span being built.
 *
 * <p>If the spans' texts stop agreeing (the tokenizers decoded the same bytes differently), the
 * walk re-synchronises at the next point where both sides have consumed the same number of
 * characters; the target tokens of that span are unmatched and get 0, as in the authors' code.
 */
public final class TokenAlignment {
  private TokenAlignment() {}

  /** A span pair: source tokens [srcFrom, srcTo), target tokens [tgtFrom, tgtTo). */
  public record Span(int srcFrom, int srcTo, int tgtFrom, int tgtTo, boolean matched) {}

  /** Target scores and the spans that produced them. */
  public record Result(float[] targetScores, List<Span> spans) {
    public int matchedSpans() {
      return (int) spans.stream().filter(Span::matched).count();
    }

    /** Target tokens that received no source score. */
    public int unmatchedTargetTokens() {
      return spans.stream().filter(s -> !s.matched()).mapToInt(s -> s.tgtTo() - s.tgtFrom())
          .sum();
    }
  }

  public static String normalise(String token) {
    return token.strip().replace(" ", "").replace("\n", "").replace("\t", "").replace("\u2581",
        "");
  }

  public static Result align(String[] sourceTokens, float[] sourceScores, String[] targetTokens) {
    if (sourceTokens.length != sourceScores.length) {
      throw new IllegalArgumentException(sourceTokens.length + " source tokens but "
          + sourceScores.length + " scores");
    }
    String[] s = new String[sourceTokens.length];
    String[] t = new String[targetTokens.length];
    for (int i = 0; i < s.length; i++) {
      s[i] = normalise(sourceTokens[i]);
    }
    for (int j = 0; j < t.length; j++) {
      t[j] = normalise(targetTokens[j]);
    }
    float[] out = new float[t.length];
    List<Span> spans = new ArrayList<>();
    int i = 0;
    int j = 0;
    while (i < s.length || j < t.length) {
      int si = i;
      int tj = j;
      StringBuilder a = new StringBuilder();
      StringBuilder b = new StringBuilder();
      // Leading empty tokens join this span.
      while (i < s.length && s[i].isEmpty()) {
        i++;
      }
      while (j < t.length && t[j].isEmpty()) {
        j++;
      }
      boolean diverged = false;
      do {
        if (a.length() <= b.length() && i < s.length) {
          a.append(s[i++]);
        } else if (j < t.length) {
          b.append(t[j++]);
        } else if (i < s.length) {
          a.append(s[i++]);
        } else {
          break;
        }
        int common = Math.min(a.length(), b.length());
        if (!diverged && !a.substring(0, common).equals(b.substring(0, common))) {
          diverged = true;
        }
      } while (a.length() != b.length() || a.length() == 0);
      boolean matched = !diverged && a.length() == b.length() && a.length() > 0
          && i > si && j > tj;
      if (matched) {
        double sum = 0;
        for (int k = si; k < i; k++) {
          sum += sourceScores[k];
        }
        float avg = (float) (sum / (i - si));
        for (int k = tj; k < j; k++) {
          out[k] = avg;
        }
      }
      spans.add(new Span(si, i, tj, j, matched));
    }
    return new Result(out, spans);
  }
}
