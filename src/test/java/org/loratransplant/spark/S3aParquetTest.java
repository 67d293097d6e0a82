package org.loratransplant.spark;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SaveMode;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.loratransplant.testing.S3TestServer;
import org.loratransplant.testing.SparkTestSession;

/** Parquet through {@code s3a://} against the in-process S3 server, and Spark SQL over it. */
class S3aParquetTest {
  @RegisterExtension
  static final S3TestServer S3 = new S3TestServer();

  private static final StructType SCHEMA = new StructType()
      .add("id", DataTypes.LongType, false)
      .add("text", DataTypes.StringType, true)
      .add("score", DataTypes.DoubleType, false)
      .add("tokens", DataTypes.createArrayType(DataTypes.IntegerType, false), false);

  /** One row of the test table, comparable with equals (Spark's Row is not, for arrays). */
  record Item(long id, String text, double score, List<Integer> tokens) {
    Row toRow() {
      return RowFactory.create(id, text, score, tokens);
    }

    static Item of(Row r) {
      return new Item(r.getLong(0), r.isNullAt(1) ? null : r.getString(1), r.getDouble(2),
          r.getList(3));
    }
  }

  private static final List<Item> ITEMS = List.of(
      new Item(1, "Once upon a time", 0.9, List.of(1, 403, 407)),
      new Item(2, "there was a cat", 0.25, List.of(2, 5, 9, 11)),
      new Item(3, null, 0.75, List.of()),
      new Item(4, "ünïcødé ✓", 0.5, List.of(7)),
      new Item(5, "the end", 1.0, List.of(3, 3, 3, 3, 3)));

  @Test
  void parquetRoundTripThroughS3a() throws IOException {
    SparkSession spark = SparkTestSession.withS3(S3);
    String path = S3.uri("x");

    write(spark, ITEMS, path);
    List<Item> back = new ArrayList<>();
    for (Row r : spark.read().parquet(path).orderBy("id").collectAsList()) {
      back.add(Item.of(r));
    }

    assertEquals(ITEMS, back);
    // The objects are in the server's store, so the data really went over the S3 API.
    Path dir = S3.bucketDir().resolve("x");
    assertTrue(Files.exists(dir.resolve("_SUCCESS")), "no _SUCCESS under " + dir);
    assertEquals(2, parquetFiles(dir), "one part file per partition");
  }

  @Test
  void sqlOnATempViewOverS3aParquet() {
    SparkSession spark = SparkTestSession.withS3(S3);
    String path = S3.uri("sql/items");
    write(spark, ITEMS, path);

    spark.read().parquet(path).createOrReplaceTempView("items");
    Row r = spark.sql("SELECT count(*) AS n, sum(score) AS s, sum(size(tokens)) AS t,"
        + " max_by(id, score) AS best FROM items WHERE score >= 0.5").first();

    // By hand from ITEMS: ids 1, 3, 4, 5 have score >= 0.5.
    assertEquals(4L, r.getLong(0));
    assertEquals(0.9 + 0.75 + 0.5 + 1.0, r.getDouble(1), 1e-12);
    assertEquals(3L + 0 + 1 + 5, r.getLong(2));
    assertEquals(5L, r.getLong(3));
  }

  @Test
  void twoServersServeOneSessionAtOnce() {
    try (S3TestServer other = new S3TestServer()) {
      SparkSession spark = SparkTestSession.withS3(S3);
      other.configure(spark.sparkContext().hadoopConfiguration());
      write(spark, ITEMS.subList(0, 2), S3.uri("pair"));
      write(spark, ITEMS.subList(2, 5), other.uri("pair"));

      assertEquals(List.of(1L, 2L), ids(spark, S3.uri("pair")));
      assertEquals(List.of(3L, 4L, 5L), ids(spark, other.uri("pair")));
      assertTrue(Files.exists(S3.bucketDir().resolve("pair/_SUCCESS")));
      assertTrue(Files.exists(other.bucketDir().resolve("pair/_SUCCESS")));
    }
  }

  private static void write(SparkSession spark, List<Item> items, String path) {
    List<Row> rows = items.stream().map(Item::toRow).toList();
    Dataset<Row> df = spark.createDataFrame(rows, SCHEMA).repartition(2);
    df.write().mode(SaveMode.Overwrite).parquet(path);
  }

  private static List<Long> ids(SparkSession spark, String path) {
    return spark.read().parquet(path).orderBy("id").select("id").as(Encoders.LONG())
        .collectAsList();
  }

  private static long parquetFiles(Path dir) throws IOException {
    try (Stream<Path> files = Files.list(dir)) {
      return files.filter(p -> p.getFileName().toString().endsWith(".parquet")).count();
    }
  }
}
