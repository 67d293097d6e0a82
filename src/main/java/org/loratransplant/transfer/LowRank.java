package org.loratransplant.transfer;

import ai.djl.ndarray.NDArray;

/**
 * A weight update kept factored, {@code dW = b a} with {@code b (out, r)} and {@code a (r, in)},
 * float64, the LoRA scaling already folded in. The transfers never form a large {@code dW}: every
 * product they need goes through the rank-r factors.
 */
public record LowRank(NDArray b, NDArray a) {
  /** {@code ||b a||_F}, computed as {@code sqrt(trace((b^T b)(a a^T)))} (r x r products). */
  public double frobenius() {
    try (NDArray bb = b.transpose().matMul(b);
        NDArray aa = a.matMul(a.transpose());
        NDArray p = bb.mul(aa);
        NDArray t = p.sum()) {
      return Math.sqrt(Math.max(0, t.toType(ai.djl.ndarray.types.DataType.FLOAT64, false)
          .getDouble()));
    }
  }

  /** The dense {@code (out, in)} update (tests and small matrices). */
  public NDArray dense() {
    return b.matMul(a);
  }
}
