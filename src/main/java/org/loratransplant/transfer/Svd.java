package org.loratransplant.transfer;

import ai.djl.ndarray.NDArray;

/**
 * A (possibly truncated) singular value decomposition {@code W ~ U diag(s) Vt} in float64:
 * {@code u (m, k)} and {@code vt (k, n)} with orthonormal columns / rows, {@code s (k)}
 * descending. The arrays belong to the manager of the decomposed matrix.
 */
public record Svd(NDArray u, NDArray s, NDArray vt) {
  /** The kept rank k. */
  public int rank() {
    return (int) s.getShape().get(0);
  }

  /** {@code V (n, k)}. */
  public NDArray v() {
    return vt.transpose();
  }

  /** The first {@code k} triplets (all of them when {@code k >= rank()}). */
  public Svd truncate(int k) {
    if (k >= rank()) {
      return this;
    }
    return new Svd(u.get(":, :" + k), s.get(":" + k), vt.get(":" + k + ", :"));
  }

  /** {@code U diag(s) Vt}, the matrix this decomposition approximates. */
  public NDArray reconstruct() {
    return u.mul(s.reshape(1, -1)).matMul(vt);
  }

  /** This decomposition with pair {@code i} negated where {@code signs[i] < 0} (same matrix). */
  Svd flip(NDArray signs) {
    return new Svd(u.mul(signs.reshape(1, -1)), s, vt.mul(signs.reshape(-1, 1)));
  }
}
