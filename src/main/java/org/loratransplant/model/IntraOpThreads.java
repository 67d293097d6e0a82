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
    set(positions <= 128 ? 1 : Math.max(1, available() / lanes));
  }

  /**
   * The cores this thread may use: inside a Spark task, the cores Spark gave it
   * ({@code spark.task.cpus}, default 1), since an executor runs one task per core and N tasks
   * each asking for N threads collapsed throughput (measured: scoring 87.7k -> 1.5k tokens/s
   * beside another job); elsewhere (one-JVM commands, the driver) all of them.
   */
  static int available() {
    return cap(DEFAULT, taskCpus());
  }

  /** {@code threads} capped by a Spark task's cores ({@code <= 0}: not in a task). */
  static int cap(int threads, int taskCpus) {
    return taskCpus > 0 ? Math.max(1, Math.min(threads, taskCpus)) : threads;
  }

  private static int taskCpus() {
    try {
      org.apache.spark.TaskContext tc = org.apache.spark.TaskContext.get();
      return tc == null ? 0 : tc.cpus();
    } catch (NoClassDefFoundError e) {
      return 0; // no Spark on the class path (a plain library use)
    }
  }

  private static void set(int n) {
    if (!PYTORCH || Integer.valueOf(n).equals(CURRENT.get())) {
      return;
    }
    JniUtils.setNumThreads(n);
    CURRENT.set(n);
  }
}
