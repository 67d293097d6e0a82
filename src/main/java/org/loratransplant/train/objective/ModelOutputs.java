package org.loratransplant.train.objective;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import java.util.Map;
import java.util.Set;
import org.loratransplant.model.Adapter;
import org.loratransplant.model.LlamaModel;

/**
 * One forward pass over a batch: the logits {@code (B, T, V)} and the outputs {@code (B, T, E)}
 * of the decoder layers an objective asked for, with the scope they live in (objectives create
 * their constants there, so everything is freed with the micro-step).
 */
public record ModelOutputs(NDArray logits, Map<Integer, NDArray> layers, NDManager scope) {

  /** Layer {@code i}'s output; fails naming the layers that were computed. */
  public NDArray layer(int i) {
    NDArray h = layers.get(i);
    if (h == null) {
      throw new IllegalArgumentException("the forward pass kept no output of layer " + i
          + " (kept: " + layers.keySet() + "); declare it in Objective.studentLayers()");
    }
    return h;
  }

  /**
   * Runs {@code model} (+ {@code adapter}, may be null) on right-padded ids {@code (rows, length)}
   * with a causal mask, as the trainer always has: padding sits after every real token, so it
   * changes no real position. With no {@code layers} this is exactly the trainer's old forward.
   */
  public static ModelOutputs run(LlamaModel model, Adapter adapter, long[] ids, int rows,
      int length, NDManager scope, NDArray embeddingNoise, boolean training, Set<Integer> layers) {
    long[] positions = new long[rows * length];
    for (int r = 0; r < rows; r++) {
      for (int i = 0; i < length; i++) {
        positions[r * length + i] = i;
      }
    }
    float[] mask = new float[length * length];
    for (int i = 0; i < length; i++) {
      for (int j = i + 1; j < length; j++) {
        mask[i * length + j] = -1e9f;
      }
    }
    NDArray idArr = scope.create(ids, new Shape(rows, length));
    NDArray posArr = scope.create(positions, new Shape(rows, length));
    NDArray maskArr = scope.create(mask, new Shape(1, 1, 1, length, length));
    if (layers.isEmpty()) {
      NDArray hidden = model.hidden(idArr, posArr, maskArr, adapter, training, embeddingNoise);
      return new ModelOutputs(model.logits(hidden), Map.of(), scope);
    }
    LlamaModel.HiddenStates h = model.hiddenStates(idArr, posArr, maskArr, adapter, training,
        embeddingNoise, layers);
    return new ModelOutputs(model.logits(h.last()), h.layers(), scope);
  }

  /** {@link #run} on a {@link TokenBatch}. */
  public static ModelOutputs run(LlamaModel model, Adapter adapter, TokenBatch batch,
      NDManager scope, NDArray embeddingNoise, boolean training, Set<Integer> layers) {
    return run(model, adapter, batch.ids(), batch.rows(), batch.length(), scope, embeddingNoise,
        training, layers);
  }
}
