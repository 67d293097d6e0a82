package org.loratransplant.spark;

import static org.apache.spark.sql.functions.col;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Arrays;
import java.util.List;
import org.apache.spark.ml.feature.MinHashLSH;
import org.apache.spark.ml.feature.MinHashLSHModel;
import org.apache.spark.ml.linalg.SQLDataTypes;
import org.apache.spark.ml.linalg.Vectors;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.Test;
import org.loratransplant.testing.SparkTestSession;

/**
 * MLlib on our classpath: MinHash LSH finds the one near-duplicate pair among sparse token-set
 * vectors, as the pipeline's near-duplicate blocking will use it.
 */
class MinHashLshTest {
  private static final int DIM = 32;

  @Test
  void approxSimilarityJoinFindsTheNearDuplicatePair() {
    SparkSession spark = SparkTestSession.get();
    StructType schema = new StructType()
        .add("id", DataTypes.IntegerType, false)
        .add("features", SQLDataTypes.VectorType(), false);
    List<Row> rows = List.of(
        doc(1, 0, 1, 2, 3, 4),
        doc(2, 0, 1, 2, 3, 5), // shares 4 of 6 distinct tokens with doc 1: Jaccard distance 1/3
        doc(3, 10, 11, 12, 13),
        doc(4, 20, 21, 22, 23, 24, 25),
        doc(5, 3, 12, 22, 30)); // one token in common with each of 1-4: distance >= 0.75
    Dataset<Row> docs = spark.createDataFrame(rows, schema);

    MinHashLSHModel model = new MinHashLSH()
        .setNumHashTables(10)
        .setSeed(42)
        .setInputCol("features")
        .setOutputCol("hashes")
        .fit(docs);
    List<Row> pairs = model.approxSimilarityJoin(docs, docs, 0.5, "distance")
        .select(col("datasetA.id").as("a"), col("datasetB.id").as("b"), col("distance"))
        .where(col("a").lt(col("b")))
        .collectAsList();

    assertEquals(1, pairs.size(), "pairs: " + pairs);
    assertEquals(1, pairs.get(0).getInt(0));
    assertEquals(2, pairs.get(0).getInt(1));
    assertEquals(1.0 / 3.0, pairs.get(0).getDouble(2), 1e-12);
  }

  /** A document as the set of its token ids: a binary sparse vector. */
  private static Row doc(int id, int... tokens) {
    double[] ones = new double[tokens.length];
    Arrays.fill(ones, 1.0);
    return RowFactory.create(id, Vectors.sparse(DIM, tokens, ones));
  }
}
