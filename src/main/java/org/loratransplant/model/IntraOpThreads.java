package org.loratransplant.model;

import ai.djl.engine.Engine;
import ai.djl.pytorch.jni.JniUtils;

/**
 * PyTorch's intra-op thread count, chosen per kind of work. Measured here on stories260K
 * (2 cores): one decode step is too small to split, and 1 thread decoded batch 32 at 11.1k
 * tokens/s against 8.9k with 2; whole-sequence scoring is the opposite (2 threads 38k vs 23k).
 * The setting is per calling thread under OpenMP, so concurrent Spark tasks do not fight over it.
 */
public final class IntraOpThreads {
  private static final int DEFAULT = Integer.getInteger("ai.djl.pytorch.num_threads",
      Runtime.getRuntime().availableProcessors());
  private static final ThreadLocal<Integer> CURRENT = new ThreadLocal<>();
  private static final boolean PYTORCH = "PyTorch".equals(Engine.getDefaultEngineName());

  private IntraOpThreads() {}

  /** Threads for a forward over {@code positions} new positions in total (batch x length). */
  public static void forPositions(long positions) {
    forPositions(positions, 1);
  }

  /** The same for one of {@code lanes} parts of a batch running side by side. */
  public static void forPositions(long positions, int lanes) {
    set(positions <= 64 ? 1 : Math.max(1, DEFAULT / lanes));
  }

  private static void set(int n) {
    if (!PYTORCH || Integer.valueOf(n).equals(CURRENT.get())) {
      return;
    }
    JniUtils.setNumThreads(n);
    CURRENT.set(n);
  }
}
