package org.loratransplant.pipeline.generate;

import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.lit;
import static org.apache.spark.sql.functions.min;
import static org.apache.spark.sql.functions.trim;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.apache.spark.api.java.function.MapFunction;
import org.apache.spark.ml.feature.CountVectorizer;
import org.apache.spark.ml.feature.CountVectorizerModel;
import org.apache.spark.ml.feature.MinHashLSH;
import org.apache.spark.ml.feature.MinHashLSHModel;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.loratransplant.table.Tables;
import org.loratransplant.text.Rouge;

/**
 * Corpus-scale near-duplicate removal, in sample-id order: a query is dropped when it is empty,
 * an exact duplicate (after trimming) of a kept query, or has ROUGE-L F >= threshold against a
 * kept query. Candidate pairs come from MLlib's MinHashLSH over the queries' ROUGE token sets
 * (Jaccard distance up to 0.8, generous for ROUGE-L 0.7) and are confirmed with exact ROUGE-L;
 * only confirmed edges reach the driver, where the keep/drop decision runs in id order.
 */
public final class NearDuplicates {
  private NearDuplicates() {}

  /** Kept rows (pool schema) and dropped rows (dropped schema). */
  public record Result(Dataset<Row> kept, Dataset<Row> dropped) {}

  public static Result filter(SparkSession spark, Dataset<Row> raw, boolean useRouge,
      double threshold, long seed) {
    raw = raw.cache();
    // Exact duplicates and empty queries: a shuffle, no driver work.
    Dataset<Row> firstOf = raw.groupBy(trim(col("query")).as("q"))
        .agg(min("sample_id").as("first_id"));
    Dataset<Row> withFirst = raw.join(firstOf, trim(raw.col("query")).equalTo(firstOf.col("q")));
    Dataset<Row> exactDropped = withFirst.filter(col("sample_id").notEqual(col("first_id"))
        .or(col("q").equalTo("")))
        .select(col("sample_id"), col("query"),
            org.apache.spark.sql.functions.when(col("q").equalTo(""), lit("empty query"))
                .otherwise(lit("exact duplicate")).as("reason"),
            org.apache.spark.sql.functions.when(col("q").equalTo(""), lit(-1L))
                .otherwise(col("first_id")).as("duplicate_of"),
            lit(1.0).as("rouge_l"));
    Dataset<Row> unique = withFirst.filter(col("sample_id").equalTo(col("first_id"))
        .and(col("q").notEqual(""))).select(java.util.Arrays.stream(Tables.POOL.schema()
            .fieldNames()).map(raw::col).toArray(org.apache.spark.sql.Column[]::new));
    if (!useRouge) {
      return new Result(unique, exactDropped);
    }
    Dataset<Row> tokens = unique.select(col("sample_id"), col("query")).map(
        (MapFunction<Row, Row>) r -> RowFactory.create(r.getLong(0), r.getString(1),
            new HashSet<>(Rouge.tokens(r.getString(1))).toArray(new String[0])),
        Encoders.row(DataTypes.createStructType(new org.apache.spark.sql.types.StructField[] {
            DataTypes.createStructField("sample_id", DataTypes.LongType, false),
            DataTypes.createStructField("query", DataTypes.StringType, false),
            DataTypes.createStructField("words", DataTypes.createArrayType(DataTypes.StringType),
                false)})));
    Dataset<Row> nonEmpty = tokens.filter(org.apache.spark.sql.functions.size(col("words"))
        .gt(0));
    CountVectorizerModel cv = new CountVectorizer().setInputCol("words").setOutputCol("features")
        .setBinary(true).setMinDF(1).fit(nonEmpty);
    Dataset<Row> vec = cv.transform(nonEmpty).cache();
    MinHashLSHModel lsh = new MinHashLSH().setNumHashTables(8).setSeed(seed)
        .setInputCol("features").setOutputCol("hashes").fit(vec);
    Dataset<Row> pairs = lsh.approxSimilarityJoin(vec, vec, 0.8, "jaccard")
        .filter(col("datasetA.sample_id").lt(col("datasetB.sample_id")))
        .select(col("datasetA.sample_id").as("a"), col("datasetA.query").as("qa"),
            col("datasetB.sample_id").as("b"), col("datasetB.query").as("qb"));
    // Exact ROUGE-L on candidates, on the executors; only confirmed edges are collected.
    List<Row> edges = pairs.map((MapFunction<Row, Row>) r -> RowFactory.create(r.getLong(0),
            r.getLong(2), Rouge.rougeL(r.getString(1), r.getString(3)).f()),
        Encoders.row(DataTypes.createStructType(new org.apache.spark.sql.types.StructField[] {
            DataTypes.createStructField("a", DataTypes.LongType, false),
            DataTypes.createStructField("b", DataTypes.LongType, false),
            DataTypes.createStructField("rouge_l", DataTypes.DoubleType, false)})))
        .filter(col("rouge_l").geq(threshold)).collectAsList();
    Map<Long, Row> dropReason = decide(edges);
    vec.unpersist();
    List<Row> dropped = new ArrayList<>();
    for (Map.Entry<Long, Row> e : dropReason.entrySet()) {
      dropped.add(e.getValue());
    }
    Dataset<Row> dropIds = spark.createDataFrame(dropped, DataTypes.createStructType(
        new org.apache.spark.sql.types.StructField[] {
            DataTypes.createStructField("sample_id", DataTypes.LongType, false),
            DataTypes.createStructField("duplicate_of", DataTypes.LongType, false),
            DataTypes.createStructField("rouge_l", DataTypes.DoubleType, false)}));
    Dataset<Row> kept = unique.join(dropIds, unique.col("sample_id").equalTo(dropIds.col(
        "sample_id")), "left_anti");
    Dataset<Row> rougeDropped = unique.join(dropIds, "sample_id").select(col("sample_id"),
        col("query"), lit("rouge-l").as("reason"), col("duplicate_of"), col("rouge_l"));
    return new Result(kept, exactDropped.unionByName(rougeDropped));
  }

  /**
   * The greedy decision over confirmed edges (a, b, rouge) with a < b: walking ids in order, b
   * is dropped when some kept a < b is its near-duplicate. A dropped query never drops others.
   */
  static Map<Long, Row> decide(List<Row> edges) {
    Map<Long, List<Row>> byLater = new TreeMap<>();
    for (Row e : edges) {
      byLater.computeIfAbsent(e.getLong(1), k -> new ArrayList<>()).add(e);
    }
    Set<Long> droppedIds = new HashSet<>();
    Map<Long, Row> out = new TreeMap<>();
    for (Map.Entry<Long, List<Row>> e : byLater.entrySet()) {
      Row best = null;
      for (Row edge : e.getValue()) {
        if (!droppedIds.contains(edge.getLong(0))
            && (best == null || edge.getLong(0) < best.getLong(0))) {
          best = edge;
        }
      }
      if (best != null) {
        droppedIds.add(e.getKey());
        out.put(e.getKey(), RowFactory.create(e.getKey(), best.getLong(0), best.getDouble(2)));
      }
    }
    return out;
  }
}
