package org.loratransplant.pipeline;

import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.Map;
import java.util.TreeMap;
import org.apache.spark.SparkContext;
import org.apache.spark.util.CollectionAccumulator;
import org.apache.spark.util.LongAccumulator;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Driver-side progress of a distributed stage: executors add to Spark accumulators as they
 * finish batches; a driver thread prints done/total, rate and ETA every few seconds. Each
 * partition also names the number format its model computed in ({@link #formats}), so a stage
 * whose executors resolved {@code precision = auto} differently (a cluster mixing machines with
 * and without bf16 units) says so in its stats and log.
 */
public final class Progress implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(Progress.class);
  private final String stage;
  private final String unit;
  private final long total;
  private final LongAccumulator done;
  private final LongAccumulator tokens;
  private final CollectionAccumulator<String> formats;
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
    this.formats = sc.collectionAccumulator(stage + ".precision");
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

  /** Each partition adds its model's precision label once (fp32, bf16, f16). */
  public CollectionAccumulator<String> formats() {
    return formats;
  }

  /**
   * Partition runs per number format so far (a retried task counts again), e.g. {bf16=3,
   * fp32=1}; empty when no partition had rows.
   */
  public Map<String, Long> formatCounts() {
    Map<String, Long> counts = new TreeMap<>();
    for (String f : formats.value()) {
      counts.merge(f, 1L, Long::sum);
    }
    return counts;
  }

  /**
   * Puts {@code "precision": {format: partitions}} into the stage's stats, and warns when the
   * partitions computed in more than one format; returns the warning, or null.
   */
  public String putFormats(ObjectNode stats) {
    Map<String, Long> counts = formatCounts();
    ObjectNode node = stats.putObject("precision");
    counts.forEach(node::put);
    if (counts.size() < 2) {
      return null;
    }
    String warning = stage + ": partitions computed in different number formats " + counts
        + " (lt.titok.precision = auto resolved differently on different executors): scores "
        + "from different formats differ by their rounding (~0.01 nats for bf16). Set "
        + "lt.titok.precision to one format (fp32, bf16 or f16) for uniform results.";
    LOG.warn(warning);
    return warning;
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
