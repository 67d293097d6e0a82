package org.loratransplant.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.UUID;
import java.util.stream.Stream;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.table.Tables;
import org.loratransplant.testing.SparkTestSession;

/**
 * A run killed while a stage wrote a table leaves its temporary directory behind
 * ({@code _tmp-scored_tokens-<uuid>}); the resumed run's commit of that output removes it
 * instead of leaving it for good (issue 13, finding 5).
 */
class StageStoreLeftoversTest {
  @TempDir Path tmp;

  private static Path stale(Path root, String name) throws Exception {
    Path d = Files.createDirectories(root.resolve(name));
    Files.writeString(d.resolve("part-00000.parquet"), "half written");
    return d;
  }

  @Test
  void aResumedCommitRemovesTheKilledAttemptsTemporaryDirectory() throws Exception {
    SparkSession spark = SparkTestSession.get();
    Path root = tmp.resolve("run");
    Path tokens = stale(root, "_tmp-scored_tokens-" + UUID.randomUUID());
    Path pool = stale(root, "_tmp-pool-" + UUID.randomUUID());
    Path run = stale(root, "_tmp-run-" + UUID.randomUUID());
    Path summary = Files.writeString(root.resolve("_tmp-" + UUID.randomUUID() + "-report.md"),
        "half");
    Path failed = stale(root, "_tmp-failed-stage-score-" + UUID.randomUUID());
    // Not a leftover of any of these outputs: left alone.
    Path other = stale(root, "_tmp-poolside-" + UUID.randomUUID());
    StageStore store = new StageStore(spark, root.toString());

    store.commit(Tables.POOL, spark.createDataFrame(List.of(RowFactory.create(1L, "q", "r",
        "stop", "stop")), Tables.POOL.schema()), "k");
    assertFalse(Files.exists(pool), "the killed attempt's _tmp-pool-* is gone");
    assertTrue(Files.exists(tokens), "another output's leftover waits for that output's commit");
    assertEquals(1, store.read(Tables.POOL).count());

    Path local = Files.createDirectories(tmp.resolve("local/run"));
    Files.writeString(local.resolve("settings.conf"), "x");
    store.commitLocalDirectory(local, "run", "k");
    assertFalse(Files.exists(run));
    store.writeBytes("report.md", "done".getBytes());
    assertFalse(Files.exists(summary));
    store.commitPartition(Tables.FAILED, "score", spark.createDataFrame(List.of(),
        Tables.FAILED.schema()), "k");
    assertFalse(Files.exists(failed));
    assertEquals(0, store.read(Tables.FAILED).count(), "an empty failed table reads back");
    assertTrue(Files.exists(other));
    try (Stream<Path> s = Files.list(root)) {
      assertEquals(List.of("_tmp-poolside", "_tmp-scored_tokens", "failed", "pool",
          "report.md", "run"), s.map(p -> p.getFileName().toString())
          .filter(n -> !n.startsWith(".")) // Hadoop's checksum files
          .map(n -> n.startsWith("_tmp-") ? n.substring(0, n.length() - 37) : n).sorted()
          .toList());
    }
  }
}
