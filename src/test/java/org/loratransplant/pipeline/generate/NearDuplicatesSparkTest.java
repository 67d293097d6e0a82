package org.loratransplant.pipeline.generate;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import java.util.stream.Collectors;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.loratransplant.table.Tables;
import org.loratransplant.testing.SparkTestSession;

/** The distributed dedup (exact, empty, MinHashLSH + ROUGE-L) on hand-made pool rows. */
class NearDuplicatesSparkTest {

  @Test
  void dropsExactEmptyAndRougeNearDuplicatesInIdOrder() {
    SparkSession spark = SparkTestSession.get();
    List<Row> rows = List.of(
        pool(1, "the cat sat on the mat and looked out"),
        pool(2, "the cat sat on a mat and looked out"),
        pool(3, "a dog ran to the park"),
        pool(4, "  the cat sat on the mat and looked out "),
        pool(5, "   "),
        pool(6, "a dog ran to the big park"),
        pool(7, "completely different words here"));
    Dataset<Row> df = spark.createDataFrame(rows, Tables.POOL.schema());
    NearDuplicates.Result r = NearDuplicates.filter(spark, df, true, 0.7, 42);
    List<Long> kept = r.kept().select("sample_id").collectAsList().stream()
        .map(x -> x.getLong(0)).sorted().collect(Collectors.toList());
    assertEquals(List.of(1L, 3L, 7L), kept);
    List<String> dropped = r.dropped().orderBy("sample_id").collectAsList().stream()
        .map(x -> x.getLong(0) + ":" + x.getString(2) + ":" + x.getLong(3))
        .collect(Collectors.toList());
    assertEquals(List.of("2:rouge-l:1", "4:exact duplicate:1", "5:empty query:-1",
        "6:rouge-l:3"), dropped);
    // Without the ROUGE-L filter only exact duplicates and empty queries go.
    NearDuplicates.Result exact = NearDuplicates.filter(spark, df, false, 0.7, 42);
    assertEquals(5, exact.kept().count());
  }

  private static Row pool(long id, String q) {
    return RowFactory.create(id, q, "True", "eos", "eos");
  }
}
