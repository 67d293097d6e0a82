package org.loratransplant.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.table.Tables;
import org.loratransplant.testing.SparkTestSession;

/**
 * The failed table: each stage writes its own partition, both read back as one table (as the
 * sql command and the SQL views see it), and a stage fails only past the allowed fraction, with
 * a message that counts, names ids and points at the table.
 */
class FailedRowsTest {
  @TempDir Path tmp;

  static Dataset<Row> failedRows(SparkSession spark, String stage, long... ids) {
    List<Row> rows = new ArrayList<>();
    for (long id : ids) {
      rows.add(RowFactory.create(stage, id, "reason of " + id, "q" + id, "r" + id));
    }
    return spark.createDataFrame(rows, Tables.FAILED.schema());
  }

  @Test
  void eachStageWritesItsPartitionAndTheTableReadsAsOne() {
    SparkSession spark = SparkTestSession.get();
    StageStore store = new StageStore(spark, tmp.resolve("run").toString());
    org.junit.jupiter.api.Assertions.assertFalse(store.has(Tables.FAILED));
    store.commitPartition(Tables.FAILED, "score", failedRows(spark, "score", 3, 7), "k1");
    store.commitPartition(Tables.FAILED, "align", failedRows(spark, "align"), "k2"); // none
    assertTrue(store.has(Tables.FAILED));
    List<String> got = store.read(Tables.FAILED).orderBy("sample_id").collectAsList().stream()
        .map(r -> r.<String>getAs("stage") + ":" + r.<Long>getAs("sample_id") + ":"
            + r.<String>getAs("reason")).toList();
    assertEquals(List.of("score:3:reason of 3", "score:7:reason of 7"), got);
    // Rewriting one stage's partition leaves the other's rows alone.
    store.commitPartition(Tables.FAILED, "align", failedRows(spark, "align", 9), "k3");
    store.commitPartition(Tables.FAILED, "score", failedRows(spark, "score", 4), "k4");
    store.read(Tables.FAILED).createOrReplaceTempView("failed");
    assertEquals(List.of("align:9", "score:4"), spark.sql("SELECT stage, sample_id FROM failed "
        + "ORDER BY stage").collectAsList().stream().map(r -> r.getString(0) + ":"
        + r.getLong(1)).toList());
  }

  @Test
  void aStageFailsOnlyPastTheAllowedFractionSayingWhichAndWhere() {
    SparkSession spark = SparkTestSession.get();
    // 1 of 24 (4.2 %) is within 5 %: no error.
    FailedRows.check("score", failedRows(spark, "score", 5), 24, 0.05, "/runs/r1");
    // None failed: fine even with a fraction of 0.
    FailedRows.check("score", failedRows(spark, "score"), 24, 0.0, "/runs/r1");
    IllegalStateException e = assertThrows(IllegalStateException.class,
        () -> FailedRows.check("score", failedRows(spark, "score", 11, 2, 30), 24, 0.05,
            "/runs/r1"));
    String m = e.getMessage();
    assertTrue(m.startsWith("score: 3 of 24 samples failed (12.5%, more than "
        + "lt.titok.max-failed-fraction = 5.0%)"), m);
    assertTrue(m.contains("sample_id 2 (reason of 2); sample_id 11 (reason of 11); sample_id 30"),
        m);
    assertTrue(m.contains("/runs/r1/failed") && m.contains("jobs/lt sql --run /runs/r1"), m);
    // More failures than the message names: the first few, then "...".
    e = assertThrows(IllegalStateException.class, () -> FailedRows.check("align",
        failedRows(spark, "align", 1, 2, 3, 4, 5, 6, 7), 10, 0.5, "/runs/r2"));
    assertTrue(e.getMessage().contains("sample_id 5 (reason of 5); ...")
        && !e.getMessage().contains("sample_id 6"), e.getMessage());
  }
}
