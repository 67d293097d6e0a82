package org.loratransplant.model;

import ai.djl.ndarray.NDArray;

/**
 * A projection's frozen weight stored transposed, {@code (in, out)}, so the forward pass is one
 * {@code x.matMul(weightT)} without a transpose op per call; {@code bias} may be null.
 */
public record Linear(NDArray weightT, NDArray bias) {

  /** {@code x (..., in) -> (..., out)}. */
  public NDArray apply(NDArray x) {
    NDArray y = x.matMul(weightT);
    return bias == null ? y : y.add(bias);
  }
}
