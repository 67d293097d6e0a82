package org.loratransplant.spark;

import java.util.Map;
import org.apache.spark.SparkConf;
import org.apache.spark.sql.SparkSession;

/** Spark sessions for jobs/lt: whatever master spark-submit gave, else local mode. */
public final class SparkSessions {
  private SparkSessions() {}

  /**
   * Gets or creates the session. Under spark-submit {@code spark.master} is set and kept; run
   * directly (jobs/lt without SPARK_HOME) it falls back to {@code localMaster}, e.g.
   * {@code local[2]} or {@code local[2,2]} (2 cores, each task tried twice).
   */
  public static SparkSession getOrCreate(String appName, String localMaster,
      Map<String, String> conf) {
    SparkConf sc = new SparkConf();
    if (!sc.contains("spark.master")) {
      sc.setMaster(localMaster);
      sc.set("spark.ui.enabled", "false");
      sc.set("spark.driver.host", "127.0.0.1");
      sc.set("spark.sql.shuffle.partitions", "4");
    }
    sc.setAppName(appName);
    sc.set("spark.sql.session.timeZone", "UTC");
    conf.forEach(sc::set);
    return SparkSession.builder().config(sc).getOrCreate();
  }
}
