package org.loratransplant.spark;

import java.util.Map;
import java.util.Objects;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.SparkConf;
import org.apache.spark.sql.SparkSession;
import scala.Option;

/**
 * The one place SparkSessions are made: local sessions for tests and small machines, and the
 * session a {@code spark-submit} launch (or a plain {@code java} launch of {@code jobs/lt}) runs
 * in.
 *
 * <p>Task retries in local mode: Spark's plain {@code local[N]} master tries every task exactly
 * once ({@code spark.task.maxFailures} is ignored in local mode). A master of the form
 * {@code local[N,F]} gives N cores and F attempts per task; {@link #local(String, int, int, Map)}
 * builds it. The pipeline's retry test runs its stages on {@code local[2,2]} so that a task that
 * fails on its first attempt is retried once, as it would be on a cluster.
 */
public final class SparkSessions {
  /** Shuffle partitions never go below this in local mode (a handful keeps stages quick). */
  public static final int MIN_LOCAL_SHUFFLE_PARTITIONS = 4;

  private static final String MASTER = "spark.master";
  private static final String S3A = "spark.hadoop.fs.s3a.";
  private static final String HADOOP_PREFIX = "spark.hadoop.";
  private static final Pattern LOCAL_MASTER =
      Pattern.compile("local(?:\\[(\\*|\\d+)(?:,\\s*(\\d+))?])?");

  /**
   * Hadoop settings that make an S3 store which does not answer fail within a minute instead of
   * Hadoop 3.3.4's defaults (50 s to connect, 200 s socket timeout, 10 SDK retries inside each of
   * 7 S3A retries: a dead endpoint hung a job for many minutes without a log line). Worst case
   * per call: (1 + retry.limit) attempts of at most max(establish, socket) timeout each, plus the
   * S3A backoff (retry.interval doubling); see {@link #s3aWorstCaseMillis}. The SDK's own retries
   * are off so that the count is S3A's alone; throttling (503) keeps S3A's separate, longer
   * {@code fs.s3a.retry.throttle.*} budget. {@code fs.s3a.connection.request.timeout} (whole
   * request) stays 0 = none: a large multipart upload over a slow link may legitimately take
   * longer than any bound that would help here, and the socket timeout already catches a silent
   * server. Any of these set by the launcher ({@code --conf spark.hadoop.fs.s3a...}) wins.
   *
   * <p>Hadoop 3.4 and newer (the {@code -Pspark4} build) raise every S3A network timeout below
   * 15 s to 15 s ({@link #s3aMinimumTimeoutMillis}), so there one call takes at most 3 x 15 s +
   * 1.5 s = 46.5 s: still within the minute.
   */
  public static final Map<String, String> S3A_TIMEOUTS = orderedMap(
      "fs.s3a.connection.establish.timeout", "5000",
      "fs.s3a.connection.timeout", "10000",
      "fs.s3a.attempts.maximum", "0",
      "fs.s3a.retry.limit", "2",
      "fs.s3a.retry.interval", "500ms");

  private SparkSessions() {}

  private static Map<String, String> orderedMap(String... kv) {
    Map<String, String> m = new java.util.LinkedHashMap<>();
    for (int i = 0; i < kv.length; i += 2) {
      m.put(kv[i], kv[i + 1]);
    }
    return java.util.Collections.unmodifiableMap(m);
  }

  /**
   * The longest one S3A call can take against a server that accepts connections and never
   * answers, under the given Hadoop settings (of {@link #S3A_TIMEOUTS}'s keys): attempts x the
   * larger timeout + the backoff between attempts.
   */
  public static long s3aWorstCaseMillis(Map<String, String> hadoop) {
    long attempts = 1 + Long.parseLong(hadoop.get("fs.s3a.retry.limit"));
    long timeout = Math.max(Long.parseLong(hadoop.get("fs.s3a.connection.establish.timeout")),
        Long.parseLong(hadoop.get("fs.s3a.connection.timeout")));
    long perAttempt = Math.max(timeout, s3aMinimumTimeoutMillis())
        * (1 + Long.parseLong(hadoop.get("fs.s3a.attempts.maximum")));
    long interval = Long.parseLong(hadoop.get("fs.s3a.retry.interval").replace("ms", ""));
    long backoff = 0;
    for (int i = 0; i < attempts - 1; i++) {
      backoff += interval << i;
    }
    return attempts * perAttempt + backoff;
  }

  /**
   * The floor the Hadoop on the class path puts under S3A's network timeouts: Hadoop 3.4+ (AWS
   * SDK v2; Spark 4) raises any shorter timeout to its {@code AWSClientConfig} minimum operation
   * duration (15 s); Hadoop 3.3 (Spark 3.5) has no such floor (0). Read by reflection because
   * that class exists only in Hadoop 3.4+.
   */
  public static long s3aMinimumTimeoutMillis() {
    try {
      Object d = Class.forName("org.apache.hadoop.fs.s3a.impl.AWSClientConfig")
          .getMethod("getMinimumOperationDuration").invoke(null);
      return ((java.time.Duration) d).toMillis();
    } catch (ReflectiveOperationException | LinkageError noFloor) {
      return 0;
    }
  }

  /** Sets each of {@link #S3A_TIMEOUTS} (as {@code spark.hadoop.*}) the conf does not set. */
  static void applyS3aTimeouts(SparkConf conf) {
    S3A_TIMEOUTS.forEach((k, v) -> conf.setIfMissing(HADOOP_PREFIX + k, v));
  }

  /**
   * A local session with {@code cores} threads and one attempt per task ({@code local[cores]}).
   *
   * @see #local(String, int, int, Map)
   */
  public static SparkSession local(String appName, int cores, Map<String, String> extraConf) {
    return local(appName, cores, 1, extraConf);
  }

  /**
   * Creates, or reuses, a local session on {@code local[cores]} ({@code maxTaskAttempts == 1}) or
   * {@code local[cores,maxTaskAttempts]}, with settings that suit a small machine: no UI,
   * {@code spark.sql.shuffle.partitions = max(4, 2 * cores)}, session time zone UTC, driver bound
   * to 127.0.0.1. {@code spark.*} JVM system properties override these defaults and
   * {@code extraConf} overrides both.
   *
   * <p>One JVM holds one SparkContext. If a session is already running with the same master it is
   * returned (runtime SQL settings in {@code extraConf} are applied to it, as Spark's builder
   * does); if it runs on another master this throws rather than silently hand back a session
   * with, say, no task retries.
   *
   * @throws IllegalStateException if a session on a different master is running in this JVM
   */
  public static SparkSession local(String appName, int cores, int maxTaskAttempts,
      Map<String, String> extraConf) {
    Objects.requireNonNull(appName, "appName");
    Objects.requireNonNull(extraConf, "extraConf");
    SparkConf conf = new SparkConf(); // loads spark.* system properties
    conf.setMaster(localMaster(cores, maxTaskAttempts));
    conf.setAppName(appName);
    applyLocalDefaults(conf, cores);
    applyS3aTimeouts(conf);
    extraConf.forEach(conf::set);

    String master = conf.get(MASTER);
    SparkSession running = runningSession();
    if (running != null && !running.sparkContext().master().equals(master)) {
      throw new IllegalStateException("a SparkSession on " + running.sparkContext().master()
          + " is already running in this JVM; stop it before asking for one on " + master);
    }
    return SparkSession.builder().config(conf).getOrCreate();
  }

  /**
   * The master string for local mode: {@code local[cores]}, or {@code local[cores,attempts]}
   * when tasks may be tried more than once.
   */
  public static String localMaster(int cores, int maxTaskAttempts) {
    if (cores < 1) {
      throw new IllegalArgumentException("cores must be >= 1, got " + cores);
    }
    if (maxTaskAttempts < 1) {
      throw new IllegalArgumentException("maxTaskAttempts must be >= 1, got " + maxTaskAttempts);
    }
    return maxTaskAttempts == 1
        ? "local[" + cores + "]"
        : "local[" + cores + "," + maxTaskAttempts + "]";
  }

  /**
   * The session for a launched job: keeps the master {@code spark-submit} set, else runs on
   * {@code local[*]}.
   *
   * @see #getOrCreate(String, String, Map)
   */
  public static SparkSession getOrCreate(String appName, Map<String, String> conf) {
    return getOrCreate(appName, "local[*]", conf);
  }

  /**
   * The session for a launched job. Under {@code spark-submit} the launcher has put
   * {@code spark.master} (and its {@code --conf}s) into system properties, and they are kept; run
   * without a launcher (no {@code spark.master} anywhere) the job falls back to
   * {@code localMaster}, e.g. {@code local[2]} or {@code local[2,2]}, with the small-machine
   * defaults of {@link #local(String, int, int, Map)}. The session time zone defaults to UTC in
   * both cases so timestamps in our tables never depend on the machine. Entries of {@code conf}
   * win over the launcher's, as settings made in code do in Spark.
   *
   * <p>An already running session is returned as it is (Spark's builder semantics), which lets
   * tests call a job's entry point inside the shared test session.
   */
  public static SparkSession getOrCreate(String appName, String localMaster,
      Map<String, String> conf) {
    return SparkSession.builder().config(launchConf(appName, localMaster, conf, new SparkConf()))
        .getOrCreate();
  }

  /**
   * Adds to {@code conf} the {@code spark.hadoop.fs.s3a.*} entries for an S3-compatible server
   * (S3Proxy, MinIO, ...): path-style addressing, static keys, region us-east-1 (so S3A never
   * asks AWS where the bucket lives), SSL only when the endpoint is {@code https}.
   */
  public static void configureS3a(Map<String, String> conf, String endpoint, String accessKey,
      String secretKey) {
    Objects.requireNonNull(endpoint, "endpoint");
    conf.put(S3A + "endpoint", endpoint);
    conf.put(S3A + "endpoint.region", "us-east-1");
    conf.put(S3A + "path.style.access", "true");
    // An explicit scheme in the endpoint already decides; this keeps the two from disagreeing.
    conf.put(S3A + "connection.ssl.enabled", String.valueOf(endpoint.startsWith("https:")));
    conf.put(S3A + "access.key", Objects.requireNonNull(accessKey, "accessKey"));
    conf.put(S3A + "secret.key", Objects.requireNonNull(secretKey, "secretKey"));
    conf.put(S3A + "aws.credentials.provider",
        "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider");
  }

  /**
   * Applies the {@code spark.hadoop.*} entries of {@code conf} to a running session's Hadoop
   * configuration (prefix stripped). Spark copies {@code spark.hadoop.*} into Hadoop only when the
   * SparkContext starts, so a session that is already up needs this instead. File systems opened
   * before the call (Hadoop caches one per scheme and bucket) keep their old settings.
   */
  public static void setHadoopConf(SparkSession spark, Map<String, String> conf) {
    Configuration hadoop = spark.sparkContext().hadoopConfiguration();
    conf.forEach((key, value) -> {
      if (key.startsWith(HADOOP_PREFIX)) {
        hadoop.set(key.substring(HADOOP_PREFIX.length()), value);
      }
    });
  }

  /** The conf {@link #getOrCreate(String, String, Map)} builds on top of {@code base}. */
  static SparkConf launchConf(String appName, String localMaster, Map<String, String> conf,
      SparkConf base) {
    Objects.requireNonNull(appName, "appName");
    Objects.requireNonNull(localMaster, "localMaster");
    SparkConf out = base.clone();
    if (!base.contains(MASTER) && !conf.containsKey(MASTER)) {
      // --master takes any Spark master URL; only a local one gets the local defaults.
      out.setMaster(localMaster);
      if (LOCAL_MASTER.matcher(localMaster.trim()).matches()) {
        applyLocalDefaults(out, localCores(localMaster));
      }
    }
    out.setAppName(appName);
    out.setIfMissing("spark.sql.session.timeZone", "UTC");
    applyS3aTimeouts(out);
    conf.forEach(out::set);
    return out;
  }

  /** Cores of a local master: {@code local} 1, {@code local[N]} / {@code local[N,F]} N, {@code *} all. */
  static int localCores(String master) {
    Matcher m = LOCAL_MASTER.matcher(master.trim());
    if (!m.matches()) {
      throw new IllegalArgumentException("not a local master: " + master);
    }
    if (m.group(1) == null) {
      return 1;
    }
    return m.group(1).equals("*")
        ? Runtime.getRuntime().availableProcessors()
        : Integer.parseInt(m.group(1));
  }

  private static void applyLocalDefaults(SparkConf conf, int cores) {
    conf.setIfMissing("spark.sql.shuffle.partitions",
        String.valueOf(Math.max(MIN_LOCAL_SHUFFLE_PARTITIONS, 2 * cores)));
    conf.setIfMissing("spark.ui.enabled", "false");
    // The progress bar writes carriage returns into logs and test output.
    conf.setIfMissing("spark.ui.showConsoleProgress", "false");
    conf.setIfMissing("spark.sql.session.timeZone", "UTC");
    // Loopback only: nothing to reach from outside, and no reverse DNS of the host name.
    conf.setIfMissing("spark.driver.host", "127.0.0.1");
    conf.setIfMissing("spark.driver.bindAddress", "127.0.0.1");
  }

  /** The session Spark's builder would reuse (active on this thread, else default), if alive. */
  private static SparkSession runningSession() {
    Option<SparkSession> s = SparkSession.getActiveSession();
    if (s.isEmpty()) {
      s = SparkSession.getDefaultSession();
    }
    return s.isDefined() && !s.get().sparkContext().isStopped() ? s.get() : null;
  }
}
