package org.loratransplant.model;

import ai.djl.pytorch.jni.IValue;

/**
 * The keys and values of one batch's decoding: a list of per-layer {@code (B, K, capacity, D)}
 * tensors that live inside libtorch, made by {@link FusedDecoder#prefill} and written in place
 * by each {@link FusedDecoder#step} (continuous batching: made by {@code newCache}, its rows
 * filled by {@code prefillRows} and advanced by {@code stepRows}). Java holds only the handle, so a step passes the whole
 * cache back without copying it or crossing JNI once per tensor.
 */
public final class KvCache implements AutoCloseable {
  private final IValue handle;
  private final int capacity;

  KvCache(IValue handle, int capacity) {
    this.handle = handle;
    this.capacity = capacity;
  }

  /** Key slots allocated. */
  public int capacity() {
    return capacity;
  }

  IValue handle() {
    return handle;
  }

  @Override
  public void close() {
    handle.close();
  }
}
