package org.loratransplant.model;

import ai.djl.ndarray.NDArray;

/**
 * A projection's frozen weight: {@code weight (out, in)} as the checkpoint stores it (a view of
 * the layer's stacked weight, see {@link LlamaModel.Layer}) and {@code weightT (in, out)}, a
 * transposed view of the same memory, so the forward pass is one {@code x.matMul(weightT)}
 * (BLAS reads the transposed layout directly) and a change made through either is seen by
 * both; {@code bias} may be null.
 */
public record Linear(NDArray weight, NDArray weightT, NDArray bias) {

  /** The projection of an {@code (out, in)} weight view. */
  static Linear of(NDArray weight, NDArray bias) {
    return new Linear(weight, weight.transpose(1, 0), bias);
  }

  /** {@code x (..., in) -> (..., out)}. */
  public NDArray apply(NDArray x) {
    NDArray y = TrainingOps.isHalf(weight) ? TrainingOps.mixedLinear(x, weight)
        : x.matMul(weightT);
    return bias == null ? y : y.add(bias);
  }
}
