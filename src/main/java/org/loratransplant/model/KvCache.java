package org.loratransplant.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;

/**
 * Keys and values of the positions seen so far, per layer, each {@code (B, nKv, S, headDim)}
 * with RoPE already applied to the keys. Arrays live in {@code manager}; each append replaces
 * (and closes) the previous arrays so a long generation does not accumulate copies.
 */
public final class KvCache implements AutoCloseable {
  private final NDManager manager;
  private final NDArray[] keys;
  private final NDArray[] values;

  public KvCache(NDManager parent, int layers) {
    this.manager = parent.newSubManager();
    this.keys = new NDArray[layers];
    this.values = new NDArray[layers];
  }

  /** Number of cached positions (0 before the first forward). */
  public long length() {
    return keys[0] == null ? 0 : keys[0].getShape().get(2);
  }

  NDArray keys(int layer) {
    return keys[layer];
  }

  NDArray values(int layer) {
    return values[layer];
  }

  /** Stores the full (past + new) keys/values of a layer; the arrays move into the cache. */
  void put(int layer, NDArray k, NDArray v) {
    NDArray oldK = keys[layer];
    NDArray oldV = values[layer];
    k.attach(manager);
    v.attach(manager);
    keys[layer] = k;
    values[layer] = v;
    if (oldK != null) {
      oldK.close();
      oldV.close();
    }
  }

  @Override
  public void close() {
    manager.close();
  }
}
