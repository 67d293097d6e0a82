package org.loratransplant.pipeline;

import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.apache.spark.SparkContext;
import org.apache.spark.util.LongAccumulator;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Driver-side progress of a distributed stage: executors add to Spark accumulators as they
 * finish batches; a driver thread prints done/total, rate and ETA every few seconds.
 */
public final class Progress implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(Progress.class);
  private final String stage;
  private final String unit;
  private final long total;
  private final LongAccumulator done;
  private final LongAccumulator tokens;
  private final long start = System.nanoTime();
  private final ScheduledExecutorService timer;
  /** The count of the last line printed once everything was done (-1: none yet). */
  private long lastDone = -1;

  public Progress(SparkContext sc, String stage, String unit, long total) {
    this(sc, stage, unit, total, true);
  }

  /** Without {@code timer}, nothing prints by itself (tests call {@link #line}). */
  Progress(SparkContext sc, String stage, String unit, long total, boolean timer) {
    this.stage = stage;
    this.unit = unit;
    this.total = total;
    this.done = sc.longAccumulator(stage + "." + unit);
    this.tokens = sc.longAccumulator(stage + ".tokens");
    this.timer = !timer ? null : Executors.newSingleThreadScheduledExecutor(r -> {
      Thread t = new Thread(r, "lt-progress-" + stage);
      t.setDaemon(true);
      return t;
    });
    if (timer) {
      this.timer.scheduleAtFixedRate(this::report, 5, 5, TimeUnit.SECONDS);
    }
  }

  public LongAccumulator done() {
    return done;
  }

  public LongAccumulator tokens() {
    return tokens;
  }

  public double seconds() {
    return (System.nanoTime() - start) / 1e9;
  }

  public long tokenCount() {
    return tokens.value();
  }

  private void report() {
    String line = line();
    if (line != null) {
      LOG.info(line);
    }
  }

  /**
   * The progress line to print now, or null. Once every unit is done the stage is still writing
   * its outputs: that is said once, not every few seconds as "100%" again (a count that grows
   * further, e.g. another generation round, prints again).
   */
  synchronized String line() {
    long d = done.value();
    if (d >= total && d == lastDone) {
      return null;
    }
    double secs = seconds();
    double rate = d / Math.max(secs, 1e-9);
    String tail;
    if (d >= total) {
      lastDone = d;
      tail = "all done; writing the stage's outputs";
    } else {
      tail = "ETA " + (d > 0 && total > 0 ? String.format("%.0f s", (total - d) / rate) : "?");
    }
    return String.format("%s: %d/%d %s (%.0f%%), %.1f %s/s, %.0f tokens/s, %s", stage, d,
        total, unit, 100.0 * d / Math.max(1, total), rate, unit, tokens.value() / secs, tail);
  }

  @Override
  public void close() {
    if (timer != null) {
      timer.shutdownNow();
    }
  }
}
