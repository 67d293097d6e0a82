package org.loratransplant.testing;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Function;
import org.apache.spark.sql.SparkSession;
import org.loratransplant.spark.SparkSessions;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The one SparkSession of a test JVM, shared by every test class: the first start costs ~2-3 s
 * and a JVM can hold only one SparkContext.
 *
 * <p>It runs on {@code local[2,2]}: two cores (the test machines have two) and two attempts per
 * task, so a task that fails once is retried as on a cluster. The pipeline's retry test
 * ({@code TitokPipelineTest}: a task killed on its first attempt reproduces the same rows) relies
 * on this. {@code TaskRetryTest} shows that plain {@code local[2]} would fail that job instead.
 *
 * <p>Fetch it with {@link #get()} (or {@link #withS3}) in each test class rather than keeping it
 * in a static field across classes: {@link #isolated} stops it, and the next {@code get()}
 * starts a fresh one.
 */
public final class SparkTestSession {
  /** Cores of the shared session. */
  public static final int CORES = 2;
  /** Attempts per task in the shared session. */
  public static final int TASK_ATTEMPTS = 2;

  private static final Logger LOG = LoggerFactory.getLogger(SparkTestSession.class);
  private static final String APP_NAME = "lora-transplant-tests";

  /** Per-bucket S3A settings of every server registered, re-applied to a restarted session. */
  private static final Map<String, String> S3_CONF = new LinkedHashMap<>();
  private static SparkSession shared;

  private SparkTestSession() {}

  /** The shared session, started on first use (or after {@link #isolated} stopped it). */
  public static synchronized SparkSession get() {
    if (shared == null || shared.sparkContext().isStopped()) {
      shared = start(TASK_ATTEMPTS);
    }
    return shared;
  }

  /**
   * The shared session, able to read and write {@code s3a://<s3.bucket()>/...} on that server.
   * The settings are scoped to the server's bucket, so several servers can be in use at once.
   */
  public static synchronized SparkSession withS3(S3TestServer s3) {
    Map<String, String> conf = s3.sparkConfForBucket();
    S3_CONF.putAll(conf);
    SparkSession spark = get();
    SparkSessions.setHadoopConf(spark, conf);
    return spark;
  }

  /**
   * Runs {@code body} in a session of its own on {@code local[2]} ({@code maxTaskAttempts} 1) or
   * {@code local[2,maxTaskAttempts]}, for a test that needs another master than the shared one.
   * The shared session is stopped first and the isolated one after {@code body}; the next
   * {@link #get()} restarts the shared one (a restart in a warm JVM took 50-200 ms here). S3
   * servers registered with {@link #withS3} stay reachable.
   */
  public static synchronized <T> T isolated(int maxTaskAttempts,
      Function<SparkSession, T> body) {
    stop(shared);
    shared = null;
    SparkSession spark = start(maxTaskAttempts);
    try {
      return body.apply(spark);
    } finally {
      stop(spark);
    }
  }

  private static SparkSession start(int maxTaskAttempts) {
    Map<String, String> conf = new LinkedHashMap<>(S3_CONF);
    // Spark would otherwise create spark-warehouse/ in the working tree. The build directory is
    // target/, or target-spark4/ under -Pspark4 (surefire passes it).
    conf.put("spark.sql.warehouse.dir",
        Path.of(System.getProperty("lt.build.dir", "target"), "spark-warehouse")
            .toAbsolutePath().toString());
    long t0 = System.nanoTime();
    SparkSession spark = SparkSessions.local(APP_NAME, CORES, maxTaskAttempts, conf);
    LOG.info("SparkSession {} ready in {} ms", spark.sparkContext().master(),
        (System.nanoTime() - t0) / 1_000_000);
    return spark;
  }

  private static void stop(SparkSession spark) {
    if (spark != null) {
      spark.stop();
    }
    // stop() leaves the thread's active session pointing at the dead one.
    SparkSession.clearActiveSession();
    SparkSession.clearDefaultSession();
  }
}
