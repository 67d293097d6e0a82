package org.loratransplant.train;

import java.util.List;

/**
 * A right-padded training batch: ids {@code (B, T)}, next-token targets, and per-position loss
 * weights (a response token's weight sits at the position that predicts it), with the loss
 * normaliser already computed.
 */
record Batch(int rows, int length, long[] ids, long[] targets, float[] weights,
    double normaliser) {

  static Batch of(List<TrainingExample> data, int[] indices,
      TrainerConfig.LossNormaliser normaliser) {
    int b = indices.length;
    int t = 0;
    for (int i : indices) {
      t = Math.max(t, data.get(i).length());
    }
    long[] ids = new long[b * t];
    long[] targets = new long[b * t];
    float[] weights = new float[b * t];
    double weightSum = 0;
    int responseTokens = 0;
    for (int row = 0; row < b; row++) {
      TrainingExample ex = data.get(indices[row]);
      int p = ex.prompt().length;
      for (int i = 0; i < ex.length(); i++) {
        ids[row * t + i] = i < p ? ex.prompt()[i] : ex.response()[i - p];
      }
      for (int i = 0; i + 1 < ex.length(); i++) {
        targets[row * t + i] = ids[row * t + i + 1];
      }
      for (int j = 0; j < ex.response().length; j++) {
        weights[row * t + p + j - 1] = ex.weights()[j];
        weightSum += ex.weights()[j];
      }
      responseTokens += ex.response().length;
    }
    double norm = normaliser == TrainerConfig.LossNormaliser.WEIGHT_SUM ? weightSum
        : responseTokens;
    return new Batch(b, t, ids, targets, weights, norm);
  }
}
