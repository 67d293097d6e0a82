package org.loratransplant.pipeline.generate;

import static org.apache.spark.sql.functions.col;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.List;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.loratransplant.pipeline.FailedRows;
import org.loratransplant.pipeline.Keys;
import org.loratransplant.pipeline.Progress;
import org.loratransplant.pipeline.RecipeRunner;
import org.loratransplant.pipeline.Stage;
import org.loratransplant.pipeline.StageStore;
import org.loratransplant.pipeline.score.ScoreStage;
import org.loratransplant.table.Tables;
import org.loratransplant.task.TaskExample;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The two stages every data-driven method shares: {@code generate} (the synthetic pool, in rounds
 * until the de-duplicated pool reaches its size) and {@code score} (each response token's
 * contrastive excess). Their keys depend only on the pool's settings and inputs, so every method
 * and target that agrees on them reuses the same outputs.
 */
public final class PoolStages {
  private static final Logger LOG = LoggerFactory.getLogger(PoolStages.class);
  private static final ObjectMapper JSON = new ObjectMapper();

  private final SparkSession spark;
  private final PoolSettings s;
  private final List<TaskExample> seeds;
  private final StageStore store;
  private final String generateKey;
  private final double maxFailedFraction;
  private final boolean continuousBatching;

  /**
   * @param sourceFingerprint a hash of the expert adapter's weights
   * @param taskKey a hash of the task file and split (the seed examples come from it)
   * @param maxFailedFraction the share of samples scoring may fail (recorded in the failed
   *     table) before the stage fails; not part of any key: it changes no output
   * @param continuousBatching generate with continuous batching (else static batches); not part
   *     of any key: both give the same tokens
   */
  public PoolStages(SparkSession spark, PoolSettings s, List<TaskExample> seeds,
      StageStore store, String sourceFingerprint, String taskKey, double maxFailedFraction,
      boolean continuousBatching) {
    this.spark = spark;
    this.continuousBatching = continuousBatching;
    this.s = s;
    this.maxFailedFraction = maxFailedFraction;
    this.seeds = List.copyOf(seeds);
    this.store = store;
    this.generateKey = Keys.of("generate", s, sourceFingerprint, taskKey, seeds.size());
  }

  public StageStore store() {
    return store;
  }

  public String generateKey() {
    return generateKey;
  }

  public String scoreKey() {
    return Keys.of("score", generateKey);
  }

  public Stage generate() {
    return Stage.of("generate", List.of(s.sourceModel(), s.sourceAdapter(), s.queryModel()),
        store, List.of(Tables.DROPPED.tableName(),
        Tables.POOL.tableName()), generateKey, this::runGenerate);
  }

  public Stage score() {
    return Stage.of("score", List.of(store.path(Tables.POOL)), store, List.of(
        Tables.SCORED_TOKENS.tableName(),
        Tables.SCORED_SAMPLES.tableName(), StageStore.partitionName(Tables.FAILED, "score")),
        scoreKey(), this::runScore);
  }

  /**
   * Round r generates fresh sample ids after the last round's, sized from the rate at which
   * samples survived de-duplication so far, until the pool holds N samples or the rounds run
   * out; de-duplication always runs over everything generated, in sample-id order, so the kept
   * set is the same however the rounds fell.
   */
  private ObjectNode runGenerate() {
    ObjectNode st = JSON.createObjectNode();
    long want = s.poolSize();
    Dataset<Row> raw = null;
    long next = 0;
    long kept = 0;
    NearDuplicates.Result r = null;
    int round = 0;
    try (Progress p = new Progress(spark.sparkContext(), "generate", "samples", want)) {
      while (round < s.maxRounds() && (round == 0 || kept < want)) {
        long size = round == 0 ? want
            : Math.min(want, (long) Math.ceil((want - kept) * (double) next
                / Math.max(1, kept) * 1.2) + 1);
        // Cached, not checkpointed: a lost block is regenerated, identically (seeded per id).
        Dataset<Row> more = GenerateStage.generate(spark, s, seeds, next, next + size, p,
            continuousBatching)
            .cache();
        raw = raw == null ? more : raw.union(more);
        next += size;
        round++;
        r = NearDuplicates.filter(spark, raw, s.dedupRouge(), s.rougeThreshold(), s.seed());
        kept = r.kept().count();
        LOG.info("generate: round {} wrote {} samples; the de-duplicated pool holds {} of {}",
            round, size, kept, want);
      }
      if (kept < want) {
        LOG.warn("generate: the pool reached only {} of {} samples after {} rounds (raise "
            + "lt.titok.generation.max-rounds, or the task is too narrow for this size)", kept,
            want, round);
      }
      Dataset<Row> pool = r.kept().orderBy(col("sample_id")).limit((int) want);
      store.commit(Tables.DROPPED, r.dropped(), RecipeRunner.PENDING);
      store.commit(Tables.POOL, pool, RecipeRunner.PENDING);
      st.put("generated", next);
      st.put("rounds", round);
      st.put("pool", Math.min(kept, want));
      st.put("tokens", p.tokenCount());
      p.putFormats(st);
    }
    return st;
  }

  private ObjectNode runScore() {
    ObjectNode st = JSON.createObjectNode();
    Dataset<Row> pool = store.read(Tables.POOL);
    long n = pool.count();
    try (Progress p = new Progress(spark.sparkContext(), "score", "samples", n)) {
      Dataset<Row> wide = ScoreStage.score(pool, s, p).cache();
      try {
        // The failed rows first: when there are too many, the table says which and why.
        store.commitPartition(Tables.FAILED, "score", ScoreStage.failed(wide),
            RecipeRunner.PENDING);
        Dataset<Row> failed = store.read(Tables.FAILED).where("stage = 'score'");
        FailedRows.check("score", failed, n, maxFailedFraction, store.root());
        st.put("failed", failed.count());
        store.commit(Tables.SCORED_SAMPLES, ScoreStage.samples(wide), RecipeRunner.PENDING);
        store.commit(Tables.SCORED_TOKENS, ScoreStage.tokens(wide), RecipeRunner.PENDING,
            "bucket");
      } finally {
        wide.unpersist();
      }
      st.put("samples", n);
      st.put("tokens", p.tokenCount());
      p.putFormats(st);
    }
    return st;
  }
}
