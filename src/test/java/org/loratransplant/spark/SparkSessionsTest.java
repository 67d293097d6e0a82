package org.loratransplant.spark;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.HashMap;
import java.util.Map;
import org.apache.spark.SparkConf;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.loratransplant.testing.SparkTestSession;

/** How {@link SparkSessions} builds masters, confs and sessions. */
class SparkSessionsTest {

  @Test
  void localMasterStrings() {
    assertEquals("local[2]", SparkSessions.localMaster(2, 1));
    assertEquals("local[2,2]", SparkSessions.localMaster(2, 2));
    assertThrows(IllegalArgumentException.class, () -> SparkSessions.localMaster(0, 1));
    assertThrows(IllegalArgumentException.class, () -> SparkSessions.localMaster(2, 0));
  }

  @Test
  void localCoresOfAMaster() {
    assertEquals(1, SparkSessions.localCores("local"));
    assertEquals(3, SparkSessions.localCores("local[3]"));
    assertEquals(2, SparkSessions.localCores("local[2,4]"));
    assertEquals(Runtime.getRuntime().availableProcessors(), SparkSessions.localCores("local[*]"));
    assertThrows(IllegalArgumentException.class, () -> SparkSessions.localCores("yarn"));
  }

  @Test
  void s3aEntries() {
    Map<String, String> conf = new HashMap<>();
    SparkSessions.configureS3a(conf, "http://127.0.0.1:9000", "ak", "sk");
    String p = "spark.hadoop.fs.s3a.";
    assertEquals(Map.of(
        p + "endpoint", "http://127.0.0.1:9000",
        p + "endpoint.region", "us-east-1",
        p + "path.style.access", "true",
        p + "connection.ssl.enabled", "false",
        p + "access.key", "ak",
        p + "secret.key", "sk",
        p + "aws.credentials.provider", "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"),
        conf);

    SparkSessions.configureS3a(conf, "https://s3.example.org", "ak", "sk");
    assertEquals("true", conf.get(p + "connection.ssl.enabled"));
  }

  @Test
  void withoutALauncherTheJobRunsLocallyWithSmallMachineDefaults() {
    SparkConf conf = SparkSessions.launchConf("job", "local[2,2]",
        Map.of("spark.sql.shuffle.partitions", "3"), new SparkConf(false));

    assertEquals("local[2,2]", conf.get("spark.master"));
    assertEquals("job", conf.get("spark.app.name"));
    assertEquals("false", conf.get("spark.ui.enabled"));
    assertEquals("UTC", conf.get("spark.sql.session.timeZone"));
    assertEquals("127.0.0.1", conf.get("spark.driver.host"));
    assertEquals("3", conf.get("spark.sql.shuffle.partitions"), "the caller's conf wins");
    assertEquals(String.valueOf(Math.max(4, 2 * Runtime.getRuntime().availableProcessors())),
        SparkSessions.launchConf("job", "local[*]", Map.of(), new SparkConf(false))
            .get("spark.sql.shuffle.partitions"));
  }

  @Test
  void underALauncherItsMasterAndSettingsAreKept() {
    SparkConf launched = new SparkConf(false)
        .setMaster("spark://head:7077")
        .set("spark.executor.memory", "8g")
        .set("spark.sql.shuffle.partitions", "200");
    SparkConf conf = SparkSessions.launchConf("job", "local[2]",
        Map.of("spark.executor.memory", "16g"), launched);

    assertEquals("spark://head:7077", conf.get("spark.master"));
    assertEquals("200", conf.get("spark.sql.shuffle.partitions"));
    assertEquals("16g", conf.get("spark.executor.memory"), "settings made in code win");
    assertEquals("UTC", conf.get("spark.sql.session.timeZone"));
    assertFalse(conf.contains("spark.ui.enabled"), "no local defaults on a cluster");
    assertFalse(conf.contains("spark.driver.host"), "the driver must be reachable on a cluster");
    assertFalse(launched.contains("spark.app.name"), "the launcher's conf is not modified");
  }

  /** jobs/lt titok --master spark://... was refused as "not a local master". */
  @Test
  void aClusterMasterGivenOnTheCommandLineIsUsedWithoutLocalDefaults() {
    SparkConf conf = SparkSessions.launchConf("job", "spark://127.0.0.1:7077", Map.of(),
        new SparkConf(false));
    assertEquals("spark://127.0.0.1:7077", conf.get("spark.master"));
    assertFalse(conf.contains("spark.ui.enabled"), "no local defaults on a cluster");
    assertFalse(conf.contains("spark.driver.host"));
  }

  @Test
  void theSharedSessionHasTheLocalDefaults() {
    SparkSession spark = SparkTestSession.get();
    assertEquals("local[2,2]", spark.sparkContext().master());
    assertEquals("4", spark.conf().get("spark.sql.shuffle.partitions"));
    assertEquals("UTC", spark.conf().get("spark.sql.session.timeZone"));
    assertEquals("false", spark.sparkContext().getConf().get("spark.ui.enabled"));
    assertEquals("127.0.0.1", spark.sparkContext().getConf().get("spark.driver.host"));
    assertEquals(2, spark.sparkContext().defaultParallelism());
  }

  @Test
  void aRunningSessionIsReusedOnlyForTheSameMaster() {
    SparkSession shared = SparkTestSession.get();
    assertSame(shared, SparkSessions.local("another-name", 2, 2, Map.of()));
    assertSame(shared, SparkSessions.getOrCreate("a job", Map.of()), "jobs run in tests reuse it");
    IllegalStateException e = assertThrows(IllegalStateException.class,
        () -> SparkSessions.local("x", 2, Map.of()));
    assertEquals("a SparkSession on local[2,2] is already running in this JVM; stop it before"
        + " asking for one on local[2]", e.getMessage());
  }

  @Test
  void hadoopSettingsReachARunningSession() {
    SparkSession spark = SparkTestSession.get();
    SparkSessions.setHadoopConf(spark, Map.of(
        "spark.hadoop.lt.test.setting", "yes",
        "spark.sql.not.hadoop", "no"));
    assertEquals("yes", spark.sparkContext().hadoopConfiguration().get("lt.test.setting"));
    assertNull(spark.sparkContext().hadoopConfiguration().get("spark.sql.not.hadoop"));
    assertNull(spark.sparkContext().hadoopConfiguration().get("sql.not.hadoop"));
  }
}
