package org.loratransplant.spark;

import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.sum;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.spark.ExceptionFailure;
import org.apache.spark.SparkException;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.function.MapFunction;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerTaskEnd;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.loratransplant.testing.SparkTestSession;

/**
 * Task retries in local mode: on {@code local[2,2]} (the shared test session) a task that fails
 * on its first attempt is retried and the job's result is unchanged; on plain {@code local[2]}
 * the same failure fails the job, so the retries really come from the master string.
 */
class TaskRetryTest {
  private static final int PARTITIONS = 4;
  private static final long N = 1000;
  private static final int GROUPS = 7;
  private static final String INJECTED = "injected failure on first attempt";

  @Test
  void localTwoTwoRetriesATaskThatFailsOnce() throws InterruptedException {
    SparkSession spark = SparkTestSession.get();
    assertEquals("local[2,2]", spark.sparkContext().master());
    AtomicInteger failedTasks = new AtomicInteger();
    CountDownLatch failures = new CountDownLatch(PARTITIONS);
    SparkListener listener = new SparkListener() {
      @Override
      public void onTaskEnd(SparkListenerTaskEnd end) {
        if (end.reason() instanceof ExceptionFailure f && f.description().contains(INJECTED)) {
          failedTasks.incrementAndGet();
          failures.countDown();
        }
      }
    };
    spark.sparkContext().addSparkListener(listener);
    try {
      List<Long> expected = sumOfSquaresByGroup();
      assertEquals(expected, job(spark, false));
      assertEquals(expected, job(spark, true));
      // Listener events arrive asynchronously: every partition's first attempt failed once.
      assertTrue(failures.await(10, TimeUnit.SECONDS), "failed tasks seen: " + failedTasks);
      assertEquals(PARTITIONS, failedTasks.get());
    } finally {
      spark.sparkContext().removeSparkListener(listener);
    }
  }

  @Test
  void plainLocalMasterDoesNotRetry() {
    SparkException e = SparkTestSession.isolated(1, spark -> {
      assertEquals("local[2]", spark.sparkContext().master());
      assertEquals(sumOfSquaresByGroup(), job(spark, false));
      return assertThrows(SparkException.class, () -> job(spark, true));
    });
    assertTrue(e.getMessage().contains("failed 1 times"), e.getMessage());
    assertTrue(e.getMessage().contains(INJECTED), e.getMessage());
  }

  /** Sum of v*v for v in [0, N) grouped by v*v % GROUPS: two stages with a shuffle between. */
  private static List<Long> job(SparkSession spark, boolean failFirstAttempt) {
    MapFunction<Long, Long> square = v -> {
      if (failFirstAttempt && TaskContext.get().attemptNumber() == 0) {
        throw new IllegalStateException(INJECTED);
      }
      return v * v;
    };
    List<Long> out = new ArrayList<>();
    for (Row r : spark.range(0, N, 1, PARTITIONS)
        .map(square, Encoders.LONG())
        .toDF("sq")
        .withColumn("k", col("sq").mod(GROUPS))
        .groupBy("k").agg(sum("sq"))
        .orderBy("k")
        .collectAsList()) {
      out.add(r.getLong(1));
    }
    return out;
  }

  /** The same numbers without Spark (groups with no member are absent, as in Spark's output). */
  private static List<Long> sumOfSquaresByGroup() {
    long[] sums = new long[GROUPS];
    boolean[] seen = new boolean[GROUPS];
    for (long v = 0; v < N; v++) {
      int k = (int) ((v * v) % GROUPS);
      sums[k] += v * v;
      seen[k] = true;
    }
    List<Long> out = new ArrayList<>();
    for (int k = 0; k < GROUPS; k++) {
      if (seen[k]) {
        out.add(sums[k]);
      }
    }
    return out;
  }
}
