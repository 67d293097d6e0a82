package org.loratransplant.pipeline.align;

import static org.apache.spark.sql.functions.col;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.apache.spark.api.java.function.FlatMapGroupsFunction;
import org.apache.spark.api.java.function.MapFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.loratransplant.align.Alignment;
import org.loratransplant.align.TokenAlignment;
import org.loratransplant.pipeline.ExecutorTokenizers;
import org.loratransplant.pipeline.ModelDirs;
import org.loratransplant.pipeline.select.Masks;
import org.loratransplant.table.Tables;
import org.loratransplant.task.PromptTemplate;
import org.loratransplant.task.TaskPrompts;
import org.loratransplant.tokenizer.TextTokenizer;

/**
 * Stage 4: the training table in target token ids. With the same tokenizer the source mask passes
 * through unchanged. With another one, each response is re-tokenised for the target, the source
 * mask is carried over by {@link TokenAlignment} (fractional scores) and a final top-k% on the
 * target side (per sample, or per group of ranks in batch scope) gives the target mask.
 */
public final class AlignStage {
  private AlignStage() {}

  /** Whether two model directories have byte-identical tokenizer.json files. */
  public static boolean sameTokenizer(String a, String b) {
    try {
      return Arrays.equals(Files.readAllBytes(ModelDirs.local(a).resolve("tokenizer.json")),
          Files.readAllBytes(ModelDirs.local(b).resolve("tokenizer.json")));
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read a tokenizer.json: " + e.getMessage(), e);
    }
  }

  public static Dataset<Row> align(Dataset<Row> selected, AlignSettings s) {
    Tables.SELECTED.check(selected);
    boolean same = sameTokenizer(s.sourceModel(), s.targetModel());
    if (same || !s.select().perBatch()) {
      return selected.map((MapFunction<Row, Row>) r -> {
        Aligned a = alignRow(r, s, same);
        float[] w = same ? a.scores() : Masks.perSample(s.select(), s.targetModel(),
            a.ids(), a.scores(), a.sampleId());
        return a.row(w);
      }, Encoders.row(Tables.TRAINING.schema()));
    }
    int group = s.select().group();
    return selected.groupByKey((MapFunction<Row, Integer>) r -> (r.<Integer>getAs("rank") - 1)
        / group, Encoders.INT())
        .flatMapGroups((FlatMapGroupsFunction<Integer, Row, Row>) (k, rows) -> {
          List<Aligned> members = new ArrayList<>();
          rows.forEachRemaining(r -> members.add(alignRow(r, s, false)));
          members.sort((x, y) -> Integer.compare(x.rank(), y.rank()));
          List<float[]> scores = new ArrayList<>();
          List<int[]> ids = new ArrayList<>();
          long[] sampleIds = new long[members.size()];
          for (int i = 0; i < members.size(); i++) {
            scores.add(members.get(i).scores());
            ids.add(members.get(i).ids());
            sampleIds[i] = members.get(i).sampleId();
          }
          List<float[]> masks = Masks.perGroup(s.select(), s.targetModel(), ids, scores,
              sampleIds);
          List<Row> out = new ArrayList<>();
          for (int i = 0; i < members.size(); i++) {
            out.add(members.get(i).row(masks.get(i)));
          }
          return out.iterator();
        }, Encoders.row(Tables.TRAINING.schema()));
  }

  /** One sample carried to the target: its ids, fractional scores and alignment counts. */
  record Aligned(long sampleId, int rank, Integer[] prompt, Integer[] response, float[] scores,
      int matched, int unmatched) {
    int[] ids() {
      int[] out = new int[response.length];
      for (int i = 0; i < out.length; i++) {
        out[i] = response[i];
      }
      return out;
    }

    Row row(float[] weights) {
      Float[] w = new Float[weights.length];
      for (int i = 0; i < w.length; i++) {
        w[i] = weights[i];
      }
      return RowFactory.create(sampleId, rank, prompt, response, w, matched, unmatched);
    }
  }

  static Aligned alignRow(Row r, AlignSettings s, boolean same) {
    long id = r.<Long>getAs("sample_id");
    int rank = r.<Integer>getAs("rank");
    List<Integer> srcIds = r.getList(r.fieldIndex("token_ids"));
    List<Float> mask = r.getList(r.fieldIndex("mask"));
    float[] m = new float[mask.size()];
    for (int i = 0; i < m.length; i++) {
      m[i] = mask.get(i);
    }
    if (same) {
      return new Aligned(id, rank, r.getList(r.fieldIndex("prompt_ids")).toArray(new Integer[0]),
          srcIds.toArray(new Integer[0]), m, srcIds.size(), 0);
    }
    ExecutorTokenizers.Loaded src = ExecutorTokenizers.get(s.sourceModel());
    ExecutorTokenizers.Loaded tgt = ExecutorTokenizers.get(s.targetModel());
    TextTokenizer tt = tgt.tokenizer();
    int[] prompt = tt.encode(new PromptTemplate("answer", s.answerTemplate())
        .render(Map.of("input", r.<String>getAs("query"))), true);
    int[] resp = TaskPrompts.response(tt, r.getAs("response"), tgt.eos());
    int[] sid = srcIds.stream().mapToInt(Integer::intValue).toArray();
    double[] md = new double[m.length];
    for (int i = 0; i < m.length; i++) {
      md[i] = m[i];
    }
    Alignment a = TokenAlignment.align(Arrays.asList(src.tokenizer().pieces(sid)), md,
        Arrays.asList(tt.pieces(resp)));
    float[] scores = new float[a.targetScores().length];
    for (int i = 0; i < scores.length; i++) {
      scores[i] = (float) a.targetScores()[i];
    }
    // The eos tokens decode to "" on both sides and end both sequences: carry its score over.
    if (scores.length > 0 && m.length > 0) {
      scores[scores.length - 1] = Math.max(scores[scores.length - 1], m[m.length - 1]);
    }
    return new Aligned(id, rank, Tables.ints(prompt), Tables.ints(resp), scores, a.matchedSpans(),
        a.unmatchedTargetTokens());
  }
}
