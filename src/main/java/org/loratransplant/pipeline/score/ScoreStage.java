package org.loratransplant.pipeline.score;

import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.posexplode;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.util.CollectionAccumulator;
import org.apache.spark.util.LongAccumulator;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.pipeline.ExecutorModels;
import org.loratransplant.pipeline.FailedRows;
import org.loratransplant.pipeline.FaultInjection;
import org.loratransplant.pipeline.Progress;
import org.loratransplant.pipeline.generate.PoolSettings;
import org.loratransplant.table.Tables;
import org.loratransplant.task.PromptTemplate;
import org.loratransplant.task.TaskPrompts;
import org.loratransplant.tokenizer.TextTokenizer;

/**
 * Stage 2: contrastive excess. Every response token of the pool is scored teacher-forced by the
 * expert (base + adapter) and the amateur (the same base, adapter off: one model copy), and
 * {@code excess = logP_expert - logP_amateur}. The response is tokenised exactly as training sees
 * it (answer line + newline + eos), so template tokens are scored as the authors' code does.
 */
public final class ScoreStage {
  /**
   * The per-sample output plus the per-token columns that become scored_tokens, and the reason
   * of a row that failed ({@link FailedRows#ERROR}, null when it was scored).
   */
  static final StructType WIDE = Tables.SCORED_SAMPLES.schema()
      .add("token_text", DataTypes.createArrayType(DataTypes.StringType, false), false)
      .add("char_start", DataTypes.createArrayType(DataTypes.IntegerType, false), false)
      .add("char_end", DataTypes.createArrayType(DataTypes.IntegerType, false), false)
      .add(FailedRows.ERROR, DataTypes.StringType, true);

  /** Tokens are spread over this many buckets (sample_id mod n) to partition scored_tokens. */
  public static final int TOKEN_BUCKETS = 8;

  private ScoreStage() {}

  /**
   * Scores the pool; returns one wide row per sample (arrays of per-token values), a failed
   * sample's with its reason in {@link FailedRows#ERROR}.
   */
  public static Dataset<Row> score(Dataset<Row> pool, PoolSettings s, Progress progress) {
    Tables.POOL.check(pool);
    return pool.repartition(s.partitions(), col("sample_id"))
        .mapPartitions(new Scorer(s, progress.done(), progress.tokens(), progress.formats()),
            Encoders.row(WIDE));
  }

  /** scored_samples: the scored wide rows without the per-token text columns. */
  public static Dataset<Row> samples(Dataset<Row> wide) {
    return FailedRows.passed(wide).select(java.util.Arrays.stream(
        Tables.SCORED_SAMPLES.schema().fieldNames()).map(org.apache.spark.sql.functions::col)
        .toArray(org.apache.spark.sql.Column[]::new));
  }

  /** The failed table's rows of this stage. */
  public static Dataset<Row> failed(Dataset<Row> wide) {
    return FailedRows.failed(wide, "score");
  }

  /** scored_tokens: one row per response token of the scored samples. */
  public static Dataset<Row> tokens(Dataset<Row> wide) {
    Dataset<Row> t = FailedRows.passed(wide).select(col("sample_id"), posexplode(col("token_ids"))
        .as(new String[] {"position", "token_id"}), col("token_text"), col("char_start"),
        col("char_end"), col("logp_expert"), col("logp_amateur"));
    return t.selectExpr("sample_id", "position", "token_id",
        "token_text[position] AS token_text", "char_start[position] AS char_start",
        "char_end[position] AS char_end", "logp_expert[position] AS logp_expert",
        "logp_amateur[position] AS logp_amateur",
        "CAST(logp_expert[position] - logp_amateur[position] AS FLOAT) AS excess",
        "CAST(pmod(sample_id, " + TOKEN_BUCKETS + ") AS INT) AS bucket");
  }

  static final class Scorer implements MapPartitionsFunction<Row, Row> {
    private final PoolSettings s;
    private final LongAccumulator done;
    private final LongAccumulator tokens;
    private final CollectionAccumulator<String> formats;

    Scorer(PoolSettings s, LongAccumulator done, LongAccumulator tokens,
        CollectionAccumulator<String> formats) {
      this.s = s;
      this.done = done;
      this.tokens = tokens;
      this.formats = formats;
    }

    @Override
    public Iterator<Row> call(Iterator<Row> input) {
      List<Row> rows = new ArrayList<>();
      input.forEachRemaining(rows::add);
      if (rows.isEmpty()) {
        return List.<Row>of().iterator();
      }
      FaultInjection.maybeFail("score");
      ExecutorModels.Loaded expert = ExecutorModels.get(s.expert());
      LanguageModel lm = expert.model();
      formats.add(lm.precision().label());
      TextTokenizer tok = lm.tokenizer();
      PromptTemplate answer = new PromptTemplate("answer", s.answerTemplate());
      int eos = lm.eosIds()[0];
      int positions = lm.config().maxPositions();
      List<Row> out = new ArrayList<>();
      for (int from = 0; from < rows.size(); from += s.scoreBatch()) {
        List<Row> batch = new ArrayList<>();
        List<int[]> prompts = new ArrayList<>();
        List<int[]> responses = new ArrayList<>();
        List<TextTokenizer.Tokens> spans = new ArrayList<>();
        for (Row r : rows.subList(from, Math.min(rows.size(), from + s.scoreBatch()))) {
          try {
            int[] p = tok.encode(answer.render(Map.of("input", r.getString(1))), true);
            int[] y = TaskPrompts.response(tok, r.getString(2), eos);
            if (p.length + y.length > positions) {
              out.add(failure(r, "prompt and response are " + (p.length + y.length)
                  + " tokens, more than the source model's " + positions + " positions"));
              continue;
            }
            TextTokenizer.Tokens sp = tok.tokens(r.getString(2).strip() + "\n");
            batch.add(r);
            prompts.add(p);
            responses.add(y);
            spans.add(sp);
          } catch (RuntimeException e) {
            out.add(failure(r, describe(e)));
          }
        }
        done.add(Math.min(rows.size(), from + s.scoreBatch()) - from - batch.size());
        if (batch.isEmpty()) {
          continue;
        }
        List<float[]> le;
        List<float[]> la;
        try {
          le = lm.logprobs(prompts, responses, expert.adapter(), s.scoreBatch());
          la = lm.logprobs(prompts, responses, null, s.scoreBatch());
        } catch (RuntimeException e) {
          // One row can fail a whole batch: score the rows one by one to find which.
          le = new ArrayList<>();
          la = new ArrayList<>();
          for (int i = 0; i < batch.size(); i++) {
            try {
              float[] e1 = lm.logprobs(List.of(prompts.get(i)), List.of(responses.get(i)),
                  expert.adapter(), 1).get(0);
              float[] a1 = lm.logprobs(List.of(prompts.get(i)), List.of(responses.get(i)), null,
                  1).get(0);
              le.add(e1);
              la.add(a1);
            } catch (RuntimeException one) {
              le.add(null);
              la.add(null);
              out.add(failure(batch.get(i), describe(one)));
            }
          }
        }
        long toks = 0;
        for (int i = 0; i < batch.size(); i++) {
          if (le.get(i) == null) {
            continue;
          }
          Row r = batch.get(i);
          if (FaultInjection.nonFiniteScore(r.getLong(0))) {
            le.get(i)[0] = Float.NaN;
          }
          String bad = nonFinite(le.get(i), la.get(i), responses.get(i).length);
          out.add(bad != null ? failure(r, bad) : row(r, prompts.get(i), responses.get(i),
              le.get(i), la.get(i), spans.get(i), tok));
          toks += responses.get(i).length;
        }
        done.add(batch.size());
        tokens.add(2 * toks);
      }
      return out.iterator();
    }

    /** A wide row of a sample that could not be scored: empty arrays and the reason. */
    static Row failure(Row pool, String reason) {
      return RowFactory.create(pool.getLong(0), pool.getString(1), pool.getString(2),
          new Integer[0], new Integer[0], new Float[0], new Float[0], 0, 0.0, 0.0,
          new String[0], new Integer[0], new Integer[0], reason);
    }

    static String describe(RuntimeException e) {
      return e.getClass().getSimpleName() + ": " + e.getMessage();
    }

    private static Row row(Row pool, int[] prompt, int[] resp, float[] le, float[] la,
        TextTokenizer.Tokens spans, TextTokenizer tok) {
      int n = resp.length;
      double sum = 0;
      for (int i = 0; i < n; i++) {
        sum += le[i] - la[i];
      }
      String[] pieces = tok.pieces(resp);
      int textLen = pool.getString(2).strip().length() + 1;
      Integer[] start = new Integer[n];
      Integer[] end = new Integer[n];
      for (int i = 0; i < n; i++) {
        boolean known = i < spans.ids().length && spans.charStart()[i] >= 0;
        start[i] = known ? spans.charStart()[i] : textLen; // eos: an empty span at the end
        end[i] = known ? spans.charEnd()[i] : textLen;
      }
      return RowFactory.create(pool.getLong(0), pool.getString(1), pool.getString(2),
          Tables.ints(prompt), Tables.ints(resp), Tables.floats(le), Tables.floats(la), n, n == 0 ? 0.0 : sum / n, sum,
          pieces, start, end, null);
    }
  }

  /**
   * Why a row's log-probs cannot be used, or null when they are all finite: a NaN would make its
   * excess, its rank and every token selection built on it meaningless without a trace (finite
   * weights are checked at load; this catches values that overflow at run time). The row then
   * goes to the failed table (beside its sample id), naming the model side and the token.
   */
  static String nonFinite(float[] expert, float[] amateur, int n) {
    for (int i = 0; i < n; i++) {
      String side = !Float.isFinite(expert[i]) ? "expert (source + adapter)"
          : !Float.isFinite(amateur[i]) ? "base (source without adapter)" : null;
      if (side != null) {
        float v = side.startsWith("expert") ? expert[i] : amateur[i];
        return "the " + side + " log-prob of response token " + i
            + " of " + n + " is " + v + "; the model produces non-finite values for this "
            + "sample (check its weights and the device's precision)";
      }
    }
    return null;
  }
}
