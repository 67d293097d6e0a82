package org.loratransplant.spark;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.SparkConf;
import org.junit.jupiter.api.Test;
import org.loratransplant.pipeline.RunLock;

/**
 * An {@code s3a://} run directory whose endpoint does not answer fails within a minute, with a
 * message naming the endpoint, under the settings a launched job gets (Hadoop's defaults hung for
 * minutes without a word).
 */
class S3aUnreachableTest {
  /** The Hadoop configuration of a launched job pointing every bucket at {@code endpoint}. */
  static Configuration jobConf(String endpoint) {
    Map<String, String> s3 = new java.util.HashMap<>();
    SparkSessions.configureS3a(s3, endpoint, "ak", "sk");
    SparkConf conf = SparkSessions.launchConf("t", "local[1]", s3, new SparkConf(false));
    Configuration hadoop = new Configuration();
    for (scala.Tuple2<String, String> kv : conf.getAll()) {
      if (kv._1().startsWith("spark.hadoop.")) {
        hadoop.set(kv._1().substring("spark.hadoop.".length()), kv._2());
      }
    }
    return hadoop;
  }

  static String bucket() {
    return "lt-dead-" + UUID.randomUUID().toString().substring(0, 8);
  }

  /**
   * Runs {@code body} with Hadoop 3.4+'s S3A timeout floor set to {@code floor} (Hadoop's own
   * test hook, {@code AWSClientConfig.setMinimumOperationDuration}), restored after; on Hadoop 3.3,
   * which has no floor, it just runs {@code body}.
   */
  static <T> T withS3aTimeoutFloor(Duration floor, java.util.function.Supplier<T> body)
      throws ReflectiveOperationException {
    Class<?> config;
    try {
      config = Class.forName("org.apache.hadoop.fs.s3a.impl.AWSClientConfig");
    } catch (ClassNotFoundException hadoop33) {
      return body.get();
    }
    config.getMethod("setMinimumOperationDuration", Duration.class).invoke(null, floor);
    try {
      return body.get();
    } finally {
      config.getMethod("resetMinimumOperationDuration").invoke(null);
    }
  }

  @Test
  void theDefaultsBoundOneCallWellUnderAMinute() {
    // 3 attempts x 10 s socket timeout + backoff 0.5 s + 1 s; Hadoop 3.4+ (-Pspark4) raises the
    // 10 s to its 15 s floor.
    long floor = SparkSessions.s3aMinimumTimeoutMillis();
    assertTrue(floor == 0 || floor == 15_000, "Hadoop's S3A timeout floor: " + floor);
    long worst = SparkSessions.s3aWorstCaseMillis(SparkSessions.S3A_TIMEOUTS);
    assertEquals(3 * Math.max(10_000, floor) + 500 + 1_000, worst);
    assertTrue(worst < 60_000, worst + " ms");
    Configuration c = jobConf("http://127.0.0.1:1");
    SparkSessions.S3A_TIMEOUTS.forEach((k, v) -> assertEquals(v, c.get(k), k));
    // A launcher's own value wins.
    SparkConf launched = new SparkConf(false).set("spark.hadoop.fs.s3a.retry.limit", "5");
    assertEquals("5", SparkSessions.launchConf("t", "local[1]", Map.of(), launched)
        .get("spark.hadoop.fs.s3a.retry.limit"));
  }

  @Test
  void aPortWhereNothingListensFailsFastNamingTheEndpoint() throws Exception {
    int port;
    try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      port = s.getLocalPort();
    }
    String endpoint = "http://127.0.0.1:" + port;
    Configuration conf = jobConf(endpoint);
    UncheckedIOException e = assertTimeoutPreemptively(Duration.ofSeconds(60),
        () -> assertThrows(UncheckedIOException.class,
            () -> RunLock.acquire(conf, "s3a://" + bucket() + "/run")));
    assertTrue(e.getMessage().contains(endpoint), e.getMessage());
  }

  @Test
  void aServerThatAcceptsButNeverAnswersFailsAfterTheRetriesNamingTheEndpoint()
      throws Exception {
    List<Socket> accepted = new ArrayList<>();
    try (ServerSocket silent = new ServerSocket(0, 50, InetAddress.getLoopbackAddress())) {
      Thread acceptor = new Thread(() -> {
        try {
          while (true) {
            accepted.add(silent.accept());
          }
        } catch (java.io.IOException closed) {
          // the test is over
        }
      });
      acceptor.setDaemon(true);
      acceptor.start();
      String endpoint = "http://127.0.0.1:" + silent.getLocalPort();
      Configuration conf = jobConf(endpoint);
      String bucket = bucket();
      // The default 10 s socket timeout would make this test 30 s long; 1 s keeps the same
      // retry count (3 attempts) in a few seconds. Hadoop 3.4+ would raise the 1 s to its 15 s
      // floor (45 s here), so the floor is lowered for this test alone.
      conf.set("fs.s3a.bucket." + bucket + ".connection.timeout", "1000");
      UncheckedIOException e = withS3aTimeoutFloor(Duration.ofSeconds(1),
          () -> assertTimeoutPreemptively(Duration.ofSeconds(60),
              () -> assertThrows(UncheckedIOException.class,
                  () -> RunLock.acquire(conf, "s3a://" + bucket + "/run"))));
      assertTrue(e.getMessage().contains(endpoint), e.getMessage());
      assertEquals(3, accepted.size(), "1 attempt + fs.s3a.retry.limit 2 retries");
    } finally {
      for (Socket s : accepted) {
        s.close();
      }
    }
  }
}
