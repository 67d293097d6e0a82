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
import org.apache.spark.util.LongAccumulator;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.pipeline.ExecutorModels;
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
  /** The per-sample output plus the per-token columns that become scored_tokens. */
  static final StructType WIDE = Tables.SCORED_SAMPLES.schema()
      .add("token_text", DataTypes.createArrayType(DataTypes.StringType, false), false)
      .add("char_start", DataTypes.createArrayType(DataTypes.IntegerType, false), false)
      .add("char_end", DataTypes.createArrayType(DataTypes.IntegerType, false), false);

  /** Tokens are spread over this many buckets (sample_id mod n) to partition scored_tokens. */
  public static final int TOKEN_BUCKETS = 8;

  private ScoreStage() {}

  /** Scores the pool; returns one wide row per sample (arrays of per-token values). */
  public static Dataset<Row> score(Dataset<Row> pool, PoolSettings s, Progress progress) {
    Tables.POOL.check(pool);
    return pool.repartition(s.partitions(), col("sample_id"))
        .mapPartitions(new Scorer(s, progress.done(), progress.tokens()), Encoders.row(WIDE));
  }

  /** scored_samples: the wide rows without the per-token text columns. */
  public static Dataset<Row> samples(Dataset<Row> wide) {
    return wide.select(java.util.Arrays.stream(Tables.SCORED_SAMPLES.schema().fieldNames())
        .map(org.apache.spark.sql.functions::col).toArray(org.apache.spark.sql.Column[]::new));
  }

  /** scored_tokens: one row per response token, exploded from the wide rows. */
  public static Dataset<Row> tokens(Dataset<Row> wide) {
    Dataset<Row> t = wide.select(col("sample_id"), posexplode(col("token_ids"))
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

    Scorer(PoolSettings s, LongAccumulator done, LongAccumulator tokens) {
      this.s = s;
      this.done = done;
      this.tokens = tokens;
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
      TextTokenizer tok = lm.tokenizer();
      PromptTemplate answer = new PromptTemplate("answer", s.answerTemplate());
      int eos = lm.eosIds()[0];
      List<Row> out = new ArrayList<>();
      for (int from = 0; from < rows.size(); from += s.scoreBatch()) {
        List<Row> batch = rows.subList(from, Math.min(rows.size(), from + s.scoreBatch()));
        List<int[]> prompts = new ArrayList<>();
        List<int[]> responses = new ArrayList<>();
        List<TextTokenizer.Tokens> spans = new ArrayList<>();
        for (Row r : batch) {
          prompts.add(tok.encode(answer.render(Map.of("input", r.getString(1))), true));
          responses.add(TaskPrompts.response(tok, r.getString(2), eos));
          spans.add(tok.tokens(r.getString(2).strip() + "\n"));
        }
        List<float[]> le = lm.logprobs(prompts, responses, expert.adapter(), s.scoreBatch());
        List<float[]> la = lm.logprobs(prompts, responses, null, s.scoreBatch());
        long toks = 0;
        for (int i = 0; i < batch.size(); i++) {
          out.add(row(batch.get(i), prompts.get(i), responses.get(i), le.get(i), la.get(i),
              spans.get(i), tok));
          toks += responses.get(i).length;
        }
        done.add(batch.size());
        tokens.add(2 * toks);
      }
      return out.iterator();
    }

    private static Row row(Row pool, int[] prompt, int[] resp, float[] le, float[] la,
        TextTokenizer.Tokens spans, TextTokenizer tok) {
      int n = resp.length;
      checkFinite(pool.getLong(0), le, la, n);
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
          pieces, start, end);
    }
  }

  /**
   * Refuses a row whose log-probs are not all finite: a NaN would make its excess, its rank and
   * every token selection built on it meaningless without a trace (finite weights are checked at
   * load; this catches values that overflow at run time).
   *
   * @throws IllegalStateException naming the sample, the model side and the token
   */
  static void checkFinite(long sampleId, float[] expert, float[] amateur, int n) {
    for (int i = 0; i < n; i++) {
      String side = !Float.isFinite(expert[i]) ? "expert (source + adapter)"
          : !Float.isFinite(amateur[i]) ? "base (source without adapter)" : null;
      if (side != null) {
        float v = side.startsWith("expert") ? expert[i] : amateur[i];
        throw new IllegalStateException("score: sample_id " + sampleId + ": the " + side
            + " log-prob of response token " + i + " of " + n + " is " + v + "; the model "
            + "produces non-finite values for this sample (check its weights and the device's "
            + "precision)");
      }
    }
  }
}
