package org.loratransplant.train.objective;

import java.util.List;
import org.loratransplant.train.TrainerConfig.LossNormaliser;
import org.loratransplant.train.TrainingExample;

/**
 * A right-padded training batch as objectives see it: ids {@code (B, T)} row-major, next-token
 * targets, per-position loss weights (a response token's weight sits at the position that
 * predicts it), a 0/1 response mask at the same positions, each row's real length, and the
 * normaliser the trainer was configured with. Arrays are shared, not copied: do not modify them.
 */
public record TokenBatch(int rows, int length, long[] ids, long[] targets, float[] weights,
    float[] responseMask, int[] lengths, LossNormaliser normaliser) {

  public TokenBatch {
    int n = rows * length;
    if (rows <= 0 || length <= 0) {
      throw new IllegalArgumentException("a batch needs rows and positions, got (" + rows + ", "
          + length + ")");
    }
    if (ids.length != n || targets.length != n || weights.length != n
        || responseMask.length != n) {
      throw new IllegalArgumentException("ids, targets, weights and response mask must each "
          + "hold rows x length = " + n + " values");
    }
    if (lengths.length != rows) {
      throw new IllegalArgumentException(rows + " rows but " + lengths.length + " lengths");
    }
  }

  /** Rows {@code indices} of {@code data}, right-padded with id 0 to the longest. */
  public static TokenBatch of(List<TrainingExample> data, int[] indices,
      LossNormaliser normaliser) {
    int b = indices.length;
    int t = 0;
    for (int i : indices) {
      t = Math.max(t, data.get(i).length());
    }
    long[] ids = new long[b * t];
    long[] targets = new long[b * t];
    float[] weights = new float[b * t];
    float[] response = new float[b * t];
    int[] lengths = new int[b];
    for (int row = 0; row < b; row++) {
      TrainingExample ex = data.get(indices[row]);
      int p = ex.prompt().length;
      lengths[row] = ex.length();
      for (int i = 0; i < ex.length(); i++) {
        ids[row * t + i] = i < p ? ex.prompt()[i] : ex.response()[i - p];
      }
      for (int i = 0; i + 1 < ex.length(); i++) {
        targets[row * t + i] = ids[row * t + i + 1];
      }
      for (int j = 0; j < ex.response().length; j++) {
        weights[row * t + p + j - 1] = ex.weights()[j];
        response[row * t + p + j - 1] = 1f;
      }
    }
    return new TokenBatch(b, t, ids, targets, weights, response, lengths, normaliser);
  }

  /**
   * The denominator of a token loss over the batch: the weight sum or the response-token count,
   * as {@link #normaliser} says. With {@code valid} (per position, 0/1; null = all valid) only
   * valid positions count, so a loss over the positions a teacher covers is a mean over them.
   */
  public double denominator(float[] valid) {
    double sum = 0;
    boolean byWeight = normaliser == LossNormaliser.WEIGHT_SUM;
    for (int i = 0; i < weights.length; i++) {
      double v = valid == null ? 1 : valid[i];
      sum += (byWeight ? weights[i] : responseMask[i]) * v;
    }
    return sum;
  }

  /** {@code weights * valid} (valid may be null), the per-position factors of a token loss. */
  public float[] weightsWhere(float[] valid) {
    if (valid == null) {
      return weights;
    }
    if (valid.length != weights.length) {
      throw new IllegalArgumentException("validity has " + valid.length + " values for "
          + weights.length + " positions");
    }
    float[] out = new float[weights.length];
    for (int i = 0; i < out.length; i++) {
      out[i] = weights[i] * valid[i];
    }
    return out;
  }
}
