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
   * Whether {@link #lowRank} is available, so inference ({@link FusedDecoder}) may run this
   * adapter inside its one-call forward, beside the base weights or folded into a copy of them.
   */
  default boolean hasWeightDeltas() {
    return false;
  }

  /**
   * The update of one projection as low-rank factors, {@code delta(x) = x @ aT @ bT} with
   * {@code aT (in, r)} and {@code bT (r, out)} (any scaling included), fresh arrays the caller
   * closes; {@code null} when that projection is not adapted.
   */
  default LowRank lowRank(int layer, Projection projection) {
    throw new UnsupportedOperationException(getClass().getName() + " has no low-rank factors");
  }

  /** What {@link #lowRank} returns. */
  record LowRank(NDArray aT, NDArray bT) implements AutoCloseable {
    /** The rank. */
    public long rank() {
      return aT.getShape().get(1);
    }

    @Override
    public void close() {
      aT.close();
      bT.close();
    }
  }

  /**
   * A counter that every change of the adapter's weights in place increases (an optimiser step,
   * a restore from a checkpoint, a rank mask, a merge), so a copy made from them (a {@link
   * FusedDecoder}) can tell in O(1) that it is stale. Code that writes the weights directly
   * calls {@link #weightsChanged} after.
   */
  default long weightsVersion() {
    throw new UnsupportedOperationException(getClass().getName() + " has no weights version");
  }

  /** Records that the adapter's weights were changed in place. */
  default void weightsChanged() {
    throw new UnsupportedOperationException(getClass().getName() + " has no weights version");
  }

  /**
   * A hash of the adapter's current weights (every value is read: for descriptions and logs,
   * not for per-call staleness checks, which use {@link #weightsVersion}).
   */
  default long weightsFingerprint() {
    throw new UnsupportedOperationException(getClass().getName() + " has no dense weight deltas");
  }
}
