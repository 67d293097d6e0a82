package org.loratransplant.select;

import java.util.ArrayList;
import java.util.List;

/**
 * TiTok's token selection: keep the top {@code floor(k% x n)} tokens by score. Ties go to the
 * earlier token (then, in a group, to the earlier sample), so selection is deterministic.
 * Note the floor: a 1-token response at k = 70 keeps nothing, as the paper's formula says.
 */
public final class TokenSelection {
  private TokenSelection() {}

  /** How many of {@code n} tokens k percent keeps. */
  public static int keepCount(int n, double kPercent) {
    checkK(kPercent);
    // The small epsilon keeps e.g. 70% of 10 at 7 despite 0.7 * 10 = 6.9999999.
    return (int) Math.floor(n * kPercent / 100.0 + 1e-9);
  }

  public static void checkK(double kPercent) {
    if (!(kPercent > 0 && kPercent <= 100)) {
      throw new IllegalArgumentException("k must be in (0, 100] percent, got " + kPercent);
    }
  }

  /** Per sample (the paper): a 1/0 mask over one response's tokens. */
  public static float[] perSample(float[] scores, double kPercent) {
    return perGroup(List.of(scores), kPercent).get(0);
  }

  /**
   * Per group (the authors' code selects over a training batch of 4, flattened): the top
   * {@code floor(k% x total tokens)} over all the group's tokens, returned as one mask per sample.
   */
  public static List<float[]> perGroup(List<float[]> scores, double kPercent) {
    int total = 0;
    for (float[] s : scores) {
      total += s.length;
    }
    int keep = keepCount(total, kPercent);
    int[] sample = new int[total];
    int[] pos = new int[total];
    float[] val = new float[total];
    int idx = 0;
    for (int i = 0; i < scores.size(); i++) {
      for (int j = 0; j < scores.get(i).length; j++) {
        float v = scores.get(i)[j];
        if (Float.isNaN(v)) {
          throw new IllegalArgumentException("score of sample " + i + " token " + j + " is NaN");
        }
        sample[idx] = i;
        pos[idx] = j;
        val[idx] = v;
        idx++;
      }
    }
    Integer[] order = new Integer[total];
    for (int i = 0; i < total; i++) {
      order[i] = i;
    }
    // Flattened index order is (sample, position): a stable sort by descending score breaks
    // ties by earlier sample, then earlier position.
    java.util.Arrays.sort(order, (a, b) -> Float.compare(val[b], val[a]));
    List<float[]> out = new ArrayList<>();
    for (float[] s : scores) {
      out.add(new float[s.length]);
    }
    for (int r = 0; r < keep; r++) {
      int f = order[r];
      out.get(sample[f])[pos[f]] = 1f;
    }
    return out;
  }
}
