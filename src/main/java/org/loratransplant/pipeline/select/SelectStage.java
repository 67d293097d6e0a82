package org.loratransplant.pipeline.select;

import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.row_number;

import java.util.ArrayList;
import java.util.List;
import org.apache.spark.api.java.function.FlatMapGroupsFunction;
import org.apache.spark.api.java.function.MapFunction;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.catalyst.expressions.GenericRowWithSchema;
import org.apache.spark.sql.expressions.Window;
import org.loratransplant.table.Tables;

/**
 * Stage 3: the sample filter (top-M by mean excess, class-balanced top-M, or off), ranked; then
 * each kept sample's token mask ({@link Masks}: top-k %, all, random or word-level, structural
 * tokens apart or not), per sample (the paper) or per group of {@code group} consecutive ranks
 * (the authors' per-batch selection). Spark's ordered limit keeps only M rows per partition; only
 * the balanced filter brings (id, excess, answer) of the pool to the driver to share out quotas.
 */
public final class SelectStage {
  private SelectStage() {}

  public static Dataset<Row> select(Dataset<Row> scoredSamples, SelectSettings s, long poolRows) {
    Tables.SCORED_SAMPLES.check(scoredSamples);
    if (s.samples() > poolRows) {
      throw new IllegalArgumentException("M = " + s.samples() + " samples requested but the "
          + "de-duplicated pool has only " + poolRows + " (raise lt.titok.pool-factor or "
          + "lt.titok.generation.max-rounds, or lower lt.titok.samples)");
    }
    Column[] order = s.sampleFilter().equals("none")
        ? new Column[] {col("sample_id").asc()}
        : new Column[] {col("mean_excess").desc(), col("sample_id").asc()};
    Dataset<Row> candidates = scoredSamples;
    if (s.sampleFilter().equals("balanced")) {
      List<Long> ids = BalancedSamples.choose(scoredSamples, s);
      candidates = scoredSamples.where(col("sample_id").isin(ids.toArray()));
    }
    Dataset<Row> top = candidates.orderBy(order).limit(s.samples())
        .withColumn("rank", row_number().over(Window.orderBy(order)));
    if (!s.perBatch()) {
      return top.map((MapFunction<Row, Row>) r -> {
        float[] ex = excess(r);
        return selected(r, ex, Masks.perSample(s, s.sourceModel(), ids(r), ex,
            r.<Long>getAs("sample_id")));
      }, Encoders.row(Tables.SELECTED.schema()));
    }
    int group = s.group();
    return top.groupByKey((MapFunction<Row, Integer>) r -> (r.<Integer>getAs("rank") - 1) / group,
            Encoders.INT())
        .flatMapGroups((FlatMapGroupsFunction<Integer, Row, Row>) (k, rows) -> {
          List<Row> members = new ArrayList<>();
          rows.forEachRemaining(members::add);
          members.sort((a, b) -> Integer.compare(a.<Integer>getAs("rank"), b.getAs("rank")));
          List<float[]> scores = new ArrayList<>();
          List<int[]> tokenIds = new ArrayList<>();
          long[] sampleIds = new long[members.size()];
          for (int i = 0; i < members.size(); i++) {
            scores.add(excess(members.get(i)));
            tokenIds.add(ids(members.get(i)));
            sampleIds[i] = members.get(i).<Long>getAs("sample_id");
          }
          List<float[]> masks = Masks.perGroup(s, s.sourceModel(), tokenIds, scores,
              sampleIds);
          List<Row> out = new ArrayList<>();
          for (int i = 0; i < members.size(); i++) {
            out.add(selected(members.get(i), scores.get(i), masks.get(i)));
          }
          return out.iterator();
        }, Encoders.row(Tables.SELECTED.schema()));
  }

  static int[] ids(Row r) {
    List<Integer> l = r.getList(r.fieldIndex("token_ids"));
    return l.stream().mapToInt(Integer::intValue).toArray();
  }

  static float[] excess(Row r) {
    List<Float> e = r.getList(r.fieldIndex("logp_expert"));
    List<Float> a = r.getList(r.fieldIndex("logp_amateur"));
    float[] out = new float[e.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = e.get(i) - a.get(i);
    }
    return out;
  }

  /**
   * A row of the selected table, carrying its schema: the align stage reads fields by name, and
   * when it runs straight on this stage's output (tuning) Spark hands it these very objects.
   */
  static Row selected(Row r, float[] excess, float[] mask) {
    return new GenericRowWithSchema(new Object[] {r.<Long>getAs("sample_id"),
        r.<Integer>getAs("rank"), r.<String>getAs("query"), r.<String>getAs("response"),
        seq(r.getList(r.fieldIndex("prompt_ids")).toArray()),
        seq(r.getList(r.fieldIndex("token_ids")).toArray()), seq(Tables.floats(excess)),
        seq(Tables.floats(mask)), r.<Double>getAs("mean_excess")}, Tables.SELECTED.schema());
  }

  /** An array value as a Scala Seq, what {@code Row.getList} reads back. */
  private static scala.collection.Seq<Object> seq(Object[] values) {
    return scala.collection.JavaConverters.asScalaBuffer(java.util.Arrays.asList(values));
  }
}
