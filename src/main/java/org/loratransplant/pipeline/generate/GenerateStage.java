package org.loratransplant.pipeline.generate;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.util.CollectionAccumulator;
import org.apache.spark.util.LongAccumulator;
import org.loratransplant.model.GenerationParams;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.pipeline.ExecutorModels;
import org.loratransplant.pipeline.FaultInjection;
import org.loratransplant.pipeline.Progress;
import org.loratransplant.table.Tables;
import org.loratransplant.task.PromptTemplate;
import org.loratransplant.task.TaskExample;
import org.loratransplant.tokenizer.TextTokenizer;

/**
 * Stage 1: the source expert writes the synthetic pool. For each sample id a few-shot prompt of
 * the seed examples asks for a new query, then the expert answers it; each sample's random streams
 * derive from (run seed, sample id), so a retried task reproduces its rows exactly. The raw pool
 * is then de-duplicated ({@link NearDuplicates}).
 */
public final class GenerateStage {
  private GenerateStage() {}

  /**
   * The raw (not yet de-duplicated) pool rows of sample ids {@code [from, to)}: sample_id, query,
   * response and finish reasons.
   *
   * @param continuous continuous batching: each partition's queries, then its answers, run on
   *     {@code generateBatch} cache rows, a finished sample's row taking the next prompt at once;
   *     else static batches of {@code generateBatch} samples, each waiting for its longest
   */
  public static Dataset<Row> generate(SparkSession spark, PoolSettings s,
      List<TaskExample> seeds, long from, long to, Progress progress, boolean continuous) {
    PromptTemplate example = new PromptTemplate("example", s.exampleTemplate());
    StringBuilder shots = new StringBuilder();
    for (TaskExample e : seeds) {
      shots.append(example.render(Map.of("input", e.input().strip(), "target",
          e.target().strip())));
    }
    String queryPrompt = new PromptTemplate("query-generation", s.queryTemplate())
        .render(Map.of("examples", shots.toString()));
    Dataset<Long> ids = spark.range(from, to, 1, s.partitions()).as(Encoders.LONG());
    return ids.mapPartitions(new Writer(s, queryPrompt, progress.done(), progress.tokens(),
        progress.formats(), continuous),
        Encoders.row(Tables.POOL.schema()));
  }

  /** Executor side: one partition of sample ids, generated in batches. */
  static final class Writer implements MapPartitionsFunction<Long, Row> {
    private final PoolSettings s;
    private final String queryPrompt;
    private final LongAccumulator done;
    private final LongAccumulator tokens;
    private final CollectionAccumulator<String> formats;
    private final boolean continuous;

    Writer(PoolSettings s, String queryPrompt, LongAccumulator done, LongAccumulator tokens,
        CollectionAccumulator<String> formats, boolean continuous) {
      this.s = s;
      this.queryPrompt = queryPrompt;
      this.done = done;
      this.tokens = tokens;
      this.formats = formats;
      this.continuous = continuous;
    }

    @Override
    public Iterator<Row> call(Iterator<Long> input) {
      List<Long> ids = new ArrayList<>();
      input.forEachRemaining(ids::add);
      if (ids.isEmpty()) {
        return List.<Row>of().iterator();
      }
      FaultInjection.maybeFail("generate");
      ExecutorModels.Loaded expert = ExecutorModels.get(s.expert());
      ExecutorModels.Loaded querier = s.expertQueries() ? expert
          : ExecutorModels.get(s.querier());
      LanguageModel lm = expert.model();
      LanguageModel qm = querier.model();
      formats.add(lm.precision().label());
      TextTokenizer tok = lm.tokenizer();
      TextTokenizer qtok = qm.tokenizer();
      int[] stops = lineStops(lm);
      int[] qstops = s.expertQueries() ? stops : lineStops(qm);
      PromptTemplate answer = new PromptTemplate("answer", s.answerTemplate());
      List<Row> out = new ArrayList<>();
      // Continuous batching takes the whole partition at once (its rows are refilled as samples
      // finish); static batching a batch at a time. Progress counts each sample as it ends.
      int chunk = continuous ? ids.size() : s.generateBatch();
      LanguageModel.Batching batching = continuous ? LanguageModel.Batching.CONTINUOUS
          : LanguageModel.Batching.STATIC;
      LanguageModel.Finished queried = (i, g) -> add(tokens, g.tokens().length);
      LanguageModel.Finished answered = (i, g) -> {
        add(tokens, g.tokens().length);
        add(done, 1);
      };
      for (int from = 0; from < ids.size(); from += chunk) {
        List<Long> batch = ids.subList(from, Math.min(ids.size(), from + chunk));
        int[] qp = qtok.encode(queryPrompt, true);
        List<int[]> prompts = new ArrayList<>();
        long[] seeds = new long[batch.size()];
        for (int i = 0; i < batch.size(); i++) {
          prompts.add(qp);
          seeds[i] = sampleSeed(s.seed(), batch.get(i), 1);
        }
        GenerationParams qParams = new GenerationParams(s.maxQueryTokens(), s.temperature(),
            s.topP(), qstops);
        List<LanguageModel.Generation> queries = qm.generate(prompts, seeds, null, qParams,
            querier.adapter(), s.generateBatch(), batching, queried);
        List<String> queryText = new ArrayList<>();
        List<int[]> answerPrompts = new ArrayList<>();
        for (int i = 0; i < batch.size(); i++) {
          String q = firstLine(qtok.continuation(qp, queries.get(i).tokens()));
          queryText.add(q);
          answerPrompts.add(tok.encode(answer.render(Map.of("input", q)), true));
          seeds[i] = sampleSeed(s.seed(), batch.get(i), 2);
        }
        GenerationParams aParams = new GenerationParams(s.maxResponseTokens(), s.temperature(),
            s.topP(), stops);
        List<LanguageModel.Generation> answers = lm.generate(answerPrompts, seeds, null,
            aParams, expert.adapter(), s.generateBatch(), batching, answered);
        for (int i = 0; i < batch.size(); i++) {
          String a = firstLine(tok.continuation(answerPrompts.get(i),
              answers.get(i).tokens()));
          out.add(RowFactory.create(batch.get(i), queryText.get(i), a,
              queries.get(i).finishReason(), answers.get(i).finishReason()));
        }
      }
      return out.iterator();
    }

    /** Accumulators are not thread-safe, and a model with lanes reports from several threads. */
    private static void add(LongAccumulator a, long v) {
      synchronized (a) {
        a.add(v);
      }
    }
  }

  /** Ids whose text contains a newline, plus the model's eos ids: generation stops at a line. */
  public static int[] lineStops(LanguageModel lm) {
    Set<Integer> stops = new HashSet<>();
    for (int e : lm.eosIds()) {
      stops.add(e);
    }
    int v = lm.config().vocabSize();
    int[] all = new int[v];
    for (int i = 0; i < v; i++) {
      all[i] = i;
    }
    String[] pieces = lm.tokenizer().pieces(all);
    for (int i = 0; i < v; i++) {
      if (pieces[i].contains("\n")) {
        stops.add(i);
      }
    }
    return stops.stream().mapToInt(Integer::intValue).sorted().toArray();
  }

  /** A sample's seed for stream k: a pure function of (run seed, sample id, k). */
  public static long sampleSeed(long runSeed, long sampleId, int stream) {
    return new SplittableRandom(runSeed * 0x9E3779B97F4A7C15L + sampleId * 31 + stream)
        .nextLong();
  }

  public static String firstLine(String text) {
    String t = text.strip();
    int nl = t.indexOf('\n');
    return (nl >= 0 ? t.substring(0, nl) : t).strip();
  }
}
