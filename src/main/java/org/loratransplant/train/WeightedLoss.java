package org.loratransplant.train;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import org.loratransplant.model.Adapter;
import org.loratransplant.model.LlamaModel;

/**
 * The masked, weighted causal-LM loss: {@code sum_i w_i * CE(y_i) / N} over response tokens,
 * with N from {@link TrainerConfig.LossNormaliser}. A batch whose weights are all zero has loss
 * 0 and zero gradient.
 */
final class WeightedLoss {
  private WeightedLoss() {}

  static NDArray compute(LlamaModel model, Adapter adapter, Batch b, NDManager scope,
      NDArray embeddingNoise, boolean training) {
    int rows = b.rows();
    int t = b.length();
    long[] positions = new long[rows * t];
    for (int r = 0; r < rows; r++) {
      for (int i = 0; i < t; i++) {
        positions[r * t + i] = i;
      }
    }
    float[] mask = new float[t * t];
    for (int i = 0; i < t; i++) {
      for (int j = i + 1; j < t; j++) {
        mask[i * t + j] = -1e9f;
      }
    }
    NDArray hidden = model.hidden(scope.create(b.ids(), new Shape(rows, t)),
        scope.create(positions, new Shape(rows, t)), scope.create(mask, new Shape(1, 1, 1, t, t)),
        adapter, training, embeddingNoise);
    NDArray logp = model.logits(hidden).logSoftmax(-1)
        .gather(scope.create(b.targets(), new Shape(rows, t, 1)), -1); // (B, T, 1)
    NDArray weighted = logp.reshape(rows, t).mul(scope.create(b.weights(), new Shape(rows, t)))
        .sum();
    double n = b.normaliser() > 0 ? b.normaliser() : 1;
    return weighted.neg().div((float) n);
  }
}
