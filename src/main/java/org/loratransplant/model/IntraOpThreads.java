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

  /** One thread: for work too small to split whatever the model (a weight check). */
  public static void single() {
    set(1);
  }

  /**
   * Threads for a forward of {@code config}'s model over {@code positions} new positions in
   * total (batch x length).
   */
  public static void forWork(ModelConfig config, long positions) {
    forWork(config, positions, 1);
  }

  /**
   * The same for one of {@code lanes} parts of a batch running side by side: one thread while
   * the products of all positions take at most {@link #SPLIT_MACS} multiply-adds and there are
   * at most 128 positions (the stories260K measurements above), else all available ones. A
   * position count alone kept a decode step of a 7B model (batch 4) on one of two cores: its
   * products, 27 GFLOP a step, ran at half the peer's speed.
   */
  public static void forWork(ModelConfig config, long positions, int lanes) {
    boolean small = positions <= 128
        && positions * config.productMacsPerPosition() <= SPLIT_MACS;
    set(small ? 1 : Math.max(1, available() / lanes));
  }

  /**
   * Multiply-adds below which a forward of at most 128 positions stays on one thread: 128
   * positions of babyllama-tok105 (0.94M parameters, the largest shared model) are 120M.
   */
  static final long SPLIT_MACS = 1L << 27;

  /**
   * The cores this thread may use: inside a Spark task, the cores Spark gave it
   * ({@code spark.task.cpus}, default 1), since an executor runs one task per core and N tasks
   * each asking for N threads collapsed throughput (measured: scoring 87.7k -> 1.5k tokens/s
   * beside another job); elsewhere (one-JVM commands, the driver) all of them.
   */
  static int available() {
    return Math.min(cap(DEFAULT, taskCpus()), Contention.freeCores(DEFAULT));
  }

  /**
   * The cores other processes leave free: the cores every process kept busy over the last
   * second minus this process's own use (both from /proc, sampled at most once a second). An
   * intra-op team of N threads waits at every op for its slowest thread, so when another process
   * holds a core, a thread of ours that it preempts stalls the whole team: beside a busy process
   * on this 2-core machine, scoring on 2 threads fell from 11.6k to 1.5k tokens/s and training
   * from 3.2k to 0.3k, while 1 thread held. Set {@code -Dlt.threads.adaptive=false} to always
   * use every core.
   */
  static final class Contention {
    private static final long PERIOD_NS = 1_000_000_000L;
    private static final double CLOCK_TICKS = 100.0; // USER_HZ on Linux
    private static long sampledAt;
    private static long cpuTicksAt = -1;
    private static long busyTicksAt = -1;
    private static int free = Integer.MAX_VALUE;

    private Contention() {}

    /**
     * Read at each sample, so a test can fix the thread count: float results depend on it (a
     * product on 1 or 2 threads rounds differently), and a run that must equal another bit for
     * bit, such as a resumed training against an uninterrupted one, needs the same counts.
     */
    static boolean adaptive() {
      return !"false".equals(System.getProperty("lt.threads.adaptive"));
    }

    static synchronized int freeCores(int cores) {
      if (!adaptive()) {
        return cores;
      }
      long now = System.nanoTime();
      if (cpuTicksAt >= 0 && now - sampledAt < PERIOD_NS) {
        return Math.min(free, cores);
      }
      long busy = systemBusyTicks();
      long ticks = ownCpuTicks();
      if (busy >= 0 && ticks >= 0 && cpuTicksAt >= 0 && busyTicksAt >= 0) {
        double seconds = (now - sampledAt) / 1e9;
        double all = (busy - busyTicksAt) / CLOCK_TICKS / seconds;
        double ours = (ticks - cpuTicksAt) / CLOCK_TICKS / seconds;
        free = coresLeft(cores, all, ours);
      }
      // The first sample has nothing to compare with: every core until the next, a second on.
      sampledAt = now;
      cpuTicksAt = ticks;
      busyTicksAt = busy;
      return Math.min(free, cores);
    }

    /**
     * Cores left by other work: {@code cores - (busy - ours)}, rounded, at least 1, where busy
     * is the cores all processes kept busy over the last sample and ours this process's share.
     */
    static int coresLeft(int cores, double busy, double ours) {
      double othersBusy = Math.max(0, busy - ours);
      return (int) Math.max(1, Math.min(cores, Math.floor(cores - othersBusy + 0.5)));
    }

    /**
     * Clock ticks all CPUs spent busy since boot (/proc/stat's first line: user, nice, system,
     * irq, softirq and steal; steal is time a hypervisor gave another guest). Measured over a
     * second, unlike the 1-minute load average this used before, which after another process
     * stopped kept reporting it for a minute: a benchmark started right after its peer ran on
     * one thread throughout (scoring 490 against 937 tokens/s).
     */
    private static long systemBusyTicks() {
      try (java.io.BufferedReader r = java.nio.file.Files.newBufferedReader(
          java.nio.file.Path.of("/proc/stat"))) {
        String[] f = r.readLine().trim().split("\\s+");
        long busy = 0;
        for (int i : new int[] {1, 2, 3, 6, 7, 8}) {
          busy += Long.parseLong(f[i]);
        }
        return busy;
      } catch (java.io.IOException | RuntimeException e) {
        return -1;
      }
    }

    /** utime + stime of this process in clock ticks (/proc/self/stat fields 14 and 15). */
    private static long ownCpuTicks() {
      try {
        String s = java.nio.file.Files.readString(java.nio.file.Path.of("/proc/self/stat"));
        String[] f = s.substring(s.lastIndexOf(')') + 2).split(" ");
        return Long.parseLong(f[11]) + Long.parseLong(f[12]);
      } catch (java.io.IOException | RuntimeException e) {
        return -1;
      }
    }
  }

  /** The most intra-op threads this thread's forwards use ({@link #available}). */
  public static int cores() {
    return available();
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

  /** The intra-op threads this thread last set (1 when it set none). */
  static int current() {
    Integer n = CURRENT.get();
    return n == null ? 1 : n;
  }

  private static void set(int n) {
    if (!PYTORCH || Integer.valueOf(n).equals(CURRENT.get())) {
      return;
    }
    JniUtils.setNumThreads(n);
    CURRENT.set(n);
  }
}
