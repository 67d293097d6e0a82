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
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.loratransplant.align.Alignment;
import org.loratransplant.align.TokenAlignment;
import org.loratransplant.pipeline.ExecutorTokenizers;
import org.loratransplant.pipeline.FailedRows;
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

  /**
   * The training rows plus each sample's query and response, and the reason of a sample that
   * could not be carried to the target ({@link FailedRows#ERROR}, null when it was).
   */
  static final StructType WIDE = Tables.TRAINING.schema()
      .add("query", DataTypes.StringType, false)
      .add("response", DataTypes.StringType, false)
      .add(FailedRows.ERROR, DataTypes.StringType, true);

  /**
   * Carries the selection to the target; returns one wide row per selected sample (see
   * {@link #training} and {@link #failed}). A sample fails alone when its target tokens do not
   * fit the target's positions or its alignment throws.
   */
  public static Dataset<Row> align(Dataset<Row> selected, AlignSettings s) {
    Tables.SELECTED.check(selected);
    boolean same = sameTokenizer(s.sourceModel(), s.targetModel());
    if (same || !s.select().perBatch()) {
      return selected.map((MapFunction<Row, Row>) r -> {
        Aligned a;
        float[] w;
        try {
          a = alignRow(r, s, same);
          String why = a.tooLong(s.targetModel());
          if (why != null) {
            return failure(r, why);
          }
          w = same ? a.scores() : Masks.perSample(s.select(), s.targetModel(), a.ids(),
              a.scores(), a.sampleId());
        } catch (RuntimeException e) {
          return failure(r, e.getClass().getSimpleName() + ": " + e.getMessage());
        }
        return a.row(w);
      }, Encoders.row(WIDE));
    }
    int group = s.select().group();
    return selected.groupByKey((MapFunction<Row, Integer>) r -> (r.<Integer>getAs("rank") - 1)
        / group, Encoders.INT())
        .flatMapGroups((FlatMapGroupsFunction<Integer, Row, Row>) (k, rows) -> {
          List<Aligned> members = new ArrayList<>();
          List<Row> out = new ArrayList<>();
          rows.forEachRemaining(r -> {
            try {
              Aligned a = alignRow(r, s, false);
              String why = a.tooLong(s.targetModel());
              if (why != null) {
                out.add(failure(r, why));
              } else {
                members.add(a);
              }
            } catch (RuntimeException e) {
              out.add(failure(r, e.getClass().getSimpleName() + ": " + e.getMessage()));
            }
          });
          if (members.isEmpty()) {
            return out.iterator();
          }
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
          for (int i = 0; i < members.size(); i++) {
            out.add(members.get(i).row(masks.get(i)));
          }
          return out.iterator();
        }, Encoders.row(WIDE));
  }

  /** training: the aligned rows. */
  public static Dataset<Row> training(Dataset<Row> wide) {
    return FailedRows.passed(wide).select(java.util.Arrays.stream(
        Tables.TRAINING.schema().fieldNames()).map(org.apache.spark.sql.functions::col)
        .toArray(org.apache.spark.sql.Column[]::new));
  }

  /** The failed table's rows of this stage. */
  public static Dataset<Row> failed(Dataset<Row> wide) {
    return FailedRows.failed(wide, "align");
  }

  /** The wide row of a selected sample that could not be aligned: empty arrays, the reason. */
  static Row failure(Row selected, String reason) {
    return RowFactory.create(selected.<Long>getAs("sample_id"), selected.<Integer>getAs("rank"),
        new Integer[0], new Integer[0], new Float[0], 0, 0, selected.<String>getAs("query"),
        selected.<String>getAs("response"), reason);
  }

  /** One sample carried to the target: its ids, fractional scores and alignment counts. */
  record Aligned(long sampleId, int rank, Integer[] prompt, Integer[] response, float[] scores,
      int matched, int unmatched, String query, String responseText) {
    int[] ids() {
      int[] out = new int[response.length];
      for (int i = 0; i < out.length; i++) {
        out[i] = response[i];
      }
      return out;
    }

    /**
     * Why the sample cannot train the target, or null: its prompt and response in target tokens
     * must fit the target's positions (a character-level target can need several times the
     * source's tokens; the trainer would otherwise refuse the whole table).
     */
    String tooLong(String targetModel) {
      int positions = ExecutorTokenizers.get(targetModel).maxPositions();
      int n = prompt.length + response.length;
      return n <= positions ? null : "prompt and response are " + n + " tokens for the target, "
          + "more than its " + positions + " positions";
    }

    Row row(float[] weights) {
      Float[] w = new Float[weights.length];
      for (int i = 0; i < w.length; i++) {
        w[i] = weights[i];
      }
      return RowFactory.create(sampleId, rank, prompt, response, w, matched, unmatched, query,
          responseText, null);
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
          srcIds.toArray(new Integer[0]), m, srcIds.size(), 0, r.getAs("query"),
          r.getAs("response"));
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
        a.unmatchedTargetTokens(), r.getAs("query"), r.getAs("response"));
  }
}
