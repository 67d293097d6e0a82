package org.loratransplant.pipeline.select;

import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.row_number;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import org.apache.spark.api.java.function.FlatMapGroupsFunction;
import org.apache.spark.api.java.function.MapFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.expressions.Window;
import org.loratransplant.pipeline.TitokSettings;
import org.loratransplant.select.TokenSelection;
import org.loratransplant.table.Tables;

/**
 * Stage 3: the top-M samples by mean excess (ties: smaller sample id), ranked; then the top
 * {@code floor(k% x n)} tokens by excess as each sample's mask, per sample (the paper) or per
 * group of {@code batch-size} consecutive ranks (the authors' per-batch selection). Spark's
 * ordered limit keeps only M rows per partition; the pool never reaches the driver.
 */
public final class SelectStage {
  private SelectStage() {}

  public static Dataset<Row> select(Dataset<Row> scoredSamples, TitokSettings s, long poolRows) {
    Tables.SCORED_SAMPLES.check(scoredSamples);
    if (s.samples() > poolRows) {
      throw new IllegalArgumentException("M = " + s.samples() + " samples requested but the "
          + "de-duplicated pool has only " + poolRows + " (raise lt.titok.pool-factor or lower "
          + "lt.titok.samples)");
    }
    Dataset<Row> top = scoredSamples
        .orderBy(col("mean_excess").desc(), col("sample_id").asc()).limit(s.samples())
        .withColumn("rank", row_number().over(Window.orderBy(col("mean_excess").desc(),
            col("sample_id").asc())));
    if (!s.perBatchSelection()) {
      return top.map((MapFunction<Row, Row>) r -> {
        float[] ex = excess(r);
        return selected(r, ex, TokenSelection.perSample(ex, s.kPercent()));
      }, Encoders.row(Tables.SELECTED.schema()));
    }
    int group = s.selectionGroup();
    return top.groupByKey((MapFunction<Row, Integer>) r -> (r.<Integer>getAs("rank") - 1) / group,
            Encoders.INT())
        .flatMapGroups((FlatMapGroupsFunction<Integer, Row, Row>) (k, rows) -> {
          List<Row> members = new ArrayList<>();
          rows.forEachRemaining(members::add);
          members.sort((a, b) -> Integer.compare(a.<Integer>getAs("rank"), b.getAs("rank")));
          List<float[]> scores = new ArrayList<>();
          members.forEach(r -> scores.add(excess(r)));
          List<float[]> masks = TokenSelection.perGroup(scores, s.kPercent());
          List<Row> out = new ArrayList<>();
          for (int i = 0; i < members.size(); i++) {
            out.add(selected(members.get(i), scores.get(i), masks.get(i)));
          }
          Iterator<Row> it = out.iterator();
          return it;
        }, Encoders.row(Tables.SELECTED.schema()));
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

  static Row selected(Row r, float[] excess, float[] mask) {
    return RowFactory.create(r.<Long>getAs("sample_id"), r.<Integer>getAs("rank"),
        r.<String>getAs("query"), r.<String>getAs("response"),
        r.getList(r.fieldIndex("prompt_ids")).toArray(new Integer[0]),
        r.getList(r.fieldIndex("token_ids")).toArray(new Integer[0]), Tables.floats(excess), Tables.floats(mask),
        r.<Double>getAs("mean_excess"));
  }
}
