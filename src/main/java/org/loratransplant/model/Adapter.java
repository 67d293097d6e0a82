package org.loratransplant.model;

import ai.djl.ndarray.NDArray;

/**
 * A low-rank update the forward pass adds to a projection's output. The model knows nothing of
 * LoRA itself; {@code org.loratransplant.lora} implements this.
 */
public interface Adapter {

  /**
   * The update for {@code projection} of {@code layer} applied to its input {@code x}
   * ({@code (..., in)}), shaped {@code (..., out)}; {@code null} when that projection is not
   * adapted. {@code training} enables dropout.
   */
  NDArray delta(int layer, Projection projection, NDArray x, boolean training);
}
