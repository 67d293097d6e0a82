package org.loratransplant.model;

import ai.djl.engine.Engine;
import ai.djl.pytorch.jni.JniUtils;

/**
 * PyTorch's intra-op thread count, chosen per kind of work. Measured here on stories260K
 * (2 cores, TorchScript decoder): a decode step is too small to split (batch 128 decoded alike
 * on 1 and 2 threads), and so is one 128-token sequence (scored at ~37k tokens/s on 1 thread
 * against ~25k on 2); 8 or more sequences are the opposite (~65k on 2 threads against ~51k).
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
    set(positions <= 128 ? 1 : Math.max(1, DEFAULT / lanes));
  }

  private static void set(int n) {
    if (!PYTORCH || Integer.valueOf(n).equals(CURRENT.get())) {
      return;
    }
    JniUtils.setNumThreads(n);
    CURRENT.set(n);
  }
}
