package org.loratransplant.testing;

import org.apache.spark.sql.SparkSession;

/**
 * One Spark session per test JVM, in {@code local[2,2]} mode: two cores, and every task may be
 * tried twice, so tests can show that a failed task's retry reproduces its rows.
 */
public final class SparkTestSession {
  private static SparkSession spark;

  private SparkTestSession() {}

  public static synchronized SparkSession get() {
    if (spark == null) {
      spark = SparkSession.builder().master("local[2,2]").appName("lt-tests")
          .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1")
          .config("spark.sql.shuffle.partitions", "4")
          .config("spark.sql.session.timeZone", "UTC").getOrCreate();
    }
    return spark;
  }
}
