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

  public Progress(SparkContext sc, String stage, String unit, long total) {
    this.stage = stage;
    this.unit = unit;
    this.total = total;
    this.done = sc.longAccumulator(stage + "." + unit);
    this.tokens = sc.longAccumulator(stage + ".tokens");
    this.timer = Executors.newSingleThreadScheduledExecutor(r -> {
      Thread t = new Thread(r, "lt-progress-" + stage);
      t.setDaemon(true);
      return t;
    });
    timer.scheduleAtFixedRate(this::report, 5, 5, TimeUnit.SECONDS);
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
    long d = done.value();
    double secs = seconds();
    double rate = d / Math.max(secs, 1e-9);
    String eta = d > 0 && total > 0 ? String.format("%.0f s", (total - d) / rate) : "?";
    LOG.info(String.format("%s: %d/%d %s (%.0f%%), %.1f %s/s, %.0f tokens/s, ETA %s", stage, d,
        total, unit, 100.0 * d / Math.max(1, total), rate, unit, tokens.value() / secs, eta));
  }

  @Override
  public void close() {
    timer.shutdownNow();
  }
}
