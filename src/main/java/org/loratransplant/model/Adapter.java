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

  /**
   * Whether {@link #weightDelta} is available, so inference may fold this adapter into a copy of
   * the weights ({@link FusedDecoder}) instead of running it beside them.
   */
  default boolean hasWeightDeltas() {
    return false;
  }

  /**
   * The update as a dense {@code (in, out)} matrix added to the transposed weight, a fresh array
   * the caller closes; {@code null} when that projection is not adapted.
   */
  default NDArray weightDelta(int layer, Projection projection) {
    throw new UnsupportedOperationException(getClass().getName() + " has no dense weight deltas");
  }

  /**
   * A hash of the adapter's current weights, so a copy folded from them can tell when they have
   * changed (training updates them in place).
   */
  default long weightsFingerprint() {
    throw new UnsupportedOperationException(getClass().getName() + " has no dense weight deltas");
  }
}
