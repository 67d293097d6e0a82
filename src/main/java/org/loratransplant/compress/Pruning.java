package org.loratransplant.compress;

import java.util.Arrays;
import java.util.Comparator;
import java.util.stream.IntStream;

/**
 * Magnitude pruning of one {@code (out, in)} weight to a target sparsity: unstructured zeroes
 * the {@code round(s * n)} entries of smallest |w|; structured zeroes the {@code round(s * out)}
 * whole rows (output channels) of smallest L2 norm. Shapes are kept (zeroed, not removed), so
 * the pruned model loads like the original; ties go to the lower index, so the result is
 * deterministic.
 */
public final class Pruning {
  private Pruning() {}

  /** Returns a pruned copy; exactly {@code round(sparsity * w.length)} entries are zeroed. */
  public static float[] unstructured(float[] w, double sparsity) {
    check(sparsity);
    int k = (int) Math.round(sparsity * w.length);
    Integer[] order = IntStream.range(0, w.length).boxed().toArray(Integer[]::new);
    Arrays.sort(order, Comparator.comparingDouble((Integer i) -> Math.abs(w[i]))
        .thenComparingInt(i -> i));
    float[] out = w.clone();
    for (int j = 0; j < k; j++) {
      out[order[j]] = 0f;
    }
    return out;
  }

  /** Returns a copy with the {@code round(sparsity * rows)} rows of smallest L2 norm zeroed. */
  public static float[] structured(float[] w, int rows, int cols, double sparsity) {
    check(sparsity);
    if ((long) rows * cols != w.length) {
      throw new IllegalArgumentException(w.length + " values are not " + rows + " x " + cols);
    }
    double[] norm = new double[rows];
    for (int r = 0; r < rows; r++) {
      double s = 0;
      for (int c = 0; c < cols; c++) {
        s += (double) w[r * cols + c] * w[r * cols + c];
      }
      norm[r] = s;
    }
    int k = (int) Math.round(sparsity * rows);
    Integer[] order = IntStream.range(0, rows).boxed().toArray(Integer[]::new);
    Arrays.sort(order, Comparator.comparingDouble((Integer r) -> norm[r])
        .thenComparingInt(r -> r));
    float[] out = w.clone();
    for (int j = 0; j < k; j++) {
      Arrays.fill(out, order[j] * cols, (order[j] + 1) * cols, 0f);
    }
    return out;
  }

  private static void check(double sparsity) {
    if (!(sparsity >= 0 && sparsity < 1)) {
      throw new IllegalArgumentException("sparsity must be in [0, 1), got " + sparsity);
    }
  }
}
