package org.loratransplant.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.cli.Main;
import org.loratransplant.recipes.TitokJob;
import org.loratransplant.recipes.TitokSettings;
import org.loratransplant.config.Settings;
import org.loratransplant.table.Tables;
import org.loratransplant.testing.NotebookRunner;
import org.loratransplant.testing.S3TestServer;
import org.loratransplant.testing.SharedData;
import org.loratransplant.testing.SparkTestSession;
import org.loratransplant.tokenizer.TextTokenizer;

/**
 * The TiTok job end to end in local mode on the shared models, kept small: a stories260K expert
 * (trained here for a few steps) transplanted to llama2xs (same tokenizer) and to
 * babyllama-tok105 (another tokenizer); reruns, a retried task, s3a:// and bad input.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class TitokPipelineTest {
  @TempDir static Path tmp;
  static Path expert;
  static SparkSession spark;

  @BeforeAll
  static void trainExpert() {
    spark = SparkTestSession.get();
    expert = tmp.resolve("expert");
    int rc = Main.run(new String[] {"train-lora", "--model", model("stories260K"), "--out",
        expert.toString(), "--conf", "conf/expert-boolean.conf", "--set", "lt.train.epochs=2",
        "--set", "lt.task.file=" + SharedData.root() + "/data/bbh/bbh/boolean_expressions.json"});
    assertEquals(0, rc);
  }

  static String model(String name) {
    return SharedData.model(name).toString();
  }

  static Settings settings(String out, String target, String... more) {
    List<String> sets = new ArrayList<>(List.of(
        "lt.titok.out=" + out,
        "lt.titok.source-model=" + model("stories260K"),
        "lt.titok.source-adapter=" + expert,
        "lt.titok.target-model=" + model(target),
        "lt.titok.samples=12",
        "lt.titok.partitions=2",
        "lt.titok.generation.batch-size=8",
        "lt.train.epochs=2",
        // TiTok as published (default.conf's product default tunes k and selects words)
        "lt.titok.method=titok",
        "lt.task.file=" + SharedData.root() + "/data/bbh/bbh/boolean_expressions.json"));
    sets.addAll(Arrays.asList(more));
    return Settings.load(Path.of("conf/default.conf"), sets);
  }

  static List<String> rows(Dataset<Row> df, String... cols) {
    return df.selectExpr(cols).collectAsList().stream().map(Row::toString).sorted()
        .collect(Collectors.toList());
  }

  @Test
  @Order(1)
  void sameTokenizerRunsEndToEndAndRerunsSkipCompleteStages() throws Exception {
    String out = tmp.resolve("same").toString();
    int loadsBefore = ExecutorModels.loads();
    TitokJob job = new TitokJob(spark, settings(out, "llama2xs"), false);
    ObjectNode summary = job.run("evaluate");
    StageStore store = job.store();
    // Every table is committed, matches its declared schema, and feeds the next stage.
    Dataset<Row> pool = store.read(Tables.POOL);
    Dataset<Row> scored = store.read(Tables.SCORED_SAMPLES);
    Dataset<Row> tokens = store.read(Tables.SCORED_TOKENS);
    Dataset<Row> selected = store.read(Tables.SELECTED);
    Dataset<Row> training = store.read(Tables.TRAINING);
    long poolRows = pool.count();
    assertTrue(poolRows >= 12 && poolRows <= 24, "pool of " + poolRows);
    assertEquals(poolRows, scored.count());
    assertEquals(scored.selectExpr("sum(n_tokens)").first().getLong(0), tokens.count());
    assertEquals(12, selected.count());
    assertEquals(12, training.count());
    // Excess is expert minus amateur, token by token.
    Row t = tokens.selectExpr("max(abs(excess - (logp_expert - logp_amateur)))").first();
    assertTrue(t.getFloat(0) < 1e-5);
    // Selected = the 12 best mean excesses, ranked.
    List<Double> best = scored.orderBy(scored.col("mean_excess").desc()).limit(12)
        .select("mean_excess").collectAsList().stream().map(r -> r.getDouble(0)).toList();
    List<Double> kept = selected.orderBy("rank").select("mean_excess").collectAsList().stream()
        .map(r -> r.getDouble(0)).toList();
    assertEquals(best, kept);
    // Same tokenizer: the mask passes through unchanged.
    assertEquals(rows(selected, "sample_id", "token_ids", "mask"),
        rows(training, "sample_id", "response_ids AS token_ids", "weights AS mask"));
    JsonNode eval = SharedData.json(Path.of(out, "evaluation", "evaluation.json"));
    assertEquals(3, eval.get("systems").size());
    assertEquals(100, eval.get("systems").get(0).get("n").asInt());
    assertTrue(Files.isRegularFile(Path.of(out, "adapter", "adapter_model.safetensors")));
    assertTrue(summary.get("rows").get("pool").asLong() > 0);
    // One model load per executor JVM for the expert spec, across both model stages.
    // (Counted from before the run: other test classes share this JVM and load their own.)
    assertEquals(loadsBefore + 1, ExecutorModels.loads());
    // SQL views for users.
    assertEquals(12L, spark.sql("SELECT count(*) FROM selected").first().getLong(0));
    // The notebooks' SQL runs against this run's views.
    assertTrue(NotebookRunner.runSqlCells(spark, Path.of("notebooks")) > 0);

    // A rerun with the same settings skips every stage.
    ObjectNode again = new TitokJob(spark, settings(out, "llama2xs"), false).run("evaluate");
    for (String st : TitokJob.STAGES) {
      assertTrue(again.get("stages").get(st).path("skipped").asBoolean(), st + " skipped");
    }
    // ... and keeps the figures of the run that did the work, in summary.json too.
    assertEquals(summary.get("stages").get("train").get("final_loss").asDouble(),
        again.get("stages").get("train").get("final_loss").asDouble());
    assertTrue(SharedData.json(Path.of(out, "summary.json")).get("stages").get("evaluate")
        .has("report"));
    // A stage killed before it finished leaves its outputs marked pending: the rerun redoes it
    // and skips the complete stages before it.
    List<String> scoredBefore = rows(scored, "sample_id", "mean_excess");
    store.mark(Tables.SCORED_SAMPLES.tableName(), "pending");
    ObjectNode resumed = new TitokJob(spark, settings(out, "llama2xs"), false).run("score");
    assertTrue(resumed.get("stages").get("generate").path("skipped").asBoolean());
    assertFalse(resumed.get("stages").get("score").path("skipped").asBoolean(), "score redone");
    assertEquals(scoredBefore,
        rows(store.read(Tables.SCORED_SAMPLES), "sample_id", "mean_excess"));
    // Other settings into the same directory are refused without --force.
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> new TitokJob(spark, settings(out, "llama2xs", "lt.titok.k-percent=50"), false)
            .run("evaluate"));
    assertTrue(e.getMessage().contains("other settings"), e.getMessage());
  }

  @Test
  @Order(2)
  void aKilledTaskIsRetriedAndReproducesTheSameRows() {
    String first = tmp.resolve("same").toString();
    String retried = tmp.resolve("retried").toString();
    System.setProperty("lt.fail-once", "generate");
    try {
      new TitokJob(spark, settings(retried, "llama2xs"), false).run("score");
    } finally {
      System.clearProperty("lt.fail-once");
    }
    StageStore a = new StageStore(spark, first);
    StageStore b = new StageStore(spark, retried);
    assertEquals(rows(a.read(Tables.POOL), "*"), rows(b.read(Tables.POOL), "*"));
    assertEquals(rows(a.read(Tables.SCORED_SAMPLES), "sample_id", "token_ids", "mean_excess"),
        rows(b.read(Tables.SCORED_SAMPLES), "sample_id", "token_ids", "mean_excess"));
  }

  @Test
  @Order(3)
  void differentTokenizerAlignsMasksToTheTarget() {
    String out = tmp.resolve("cross").toString();
    new TitokJob(spark, settings(out, "babyllama-tok105"), false).run("train");
    StageStore store = new StageStore(spark, out);
    List<Row> training = store.read(Tables.TRAINING).orderBy("rank").collectAsList();
    List<Row> selected = store.read(Tables.SELECTED).orderBy("rank").collectAsList();
    assertEquals(12, training.size());
    try (TextTokenizer tgt = TextTokenizer.load(SharedData.model("babyllama-tok105"), 1)) {
      for (int i = 0; i < training.size(); i++) {
        Row tr = training.get(i);
        List<Integer> ids = tr.getList(tr.fieldIndex("response_ids"));
        List<Float> w = tr.getList(tr.fieldIndex("weights"));
        assertEquals(ids.size(), w.size());
        int[] arr = ids.stream().mapToInt(Integer::intValue).toArray();
        String text = tgt.decode(arr);
        // babyllama's 105 characters have no newline: it becomes <unk>, which decodes to "".
        assertEquals(selected.get(i).<String>getAs("response").strip(), text.strip(),
            "target ids spell the same response");
        assertTrue(tr.<Integer>getAs("matched_spans") > 0);
        // 70% of the target tokens are kept (floor), as 0/1 weights.
        long ones = w.stream().filter(x -> x == 1f).count();
        assertEquals((long) Math.floor(w.size() * 0.7 + 1e-9), ones);
      }
    }
    assertTrue(Files.isRegularFile(Path.of(out, "adapter", "adapter_config.json")));
  }

  @Test
  @Order(4)
  void scoringAndSelectionRunAgainstS3() throws Exception {
    try (S3TestServer s3 = new S3TestServer(tmp.resolve("s3"), "lt-runs")) {
      s3.configure(spark.sparkContext().hadoopConfiguration());
      String out = s3.bucketUri() + "/runs/same";
      new TitokJob(spark, settings(out, "llama2xs"), false).run("select");
      StageStore remote = new StageStore(spark, out);
      StageStore local = new StageStore(spark, tmp.resolve("same").toString());
      assertEquals(rows(local.read(Tables.SELECTED), "sample_id", "rank", "mask"),
          rows(remote.read(Tables.SELECTED), "sample_id", "rank", "mask"));
      assertTrue(remote.completedHash(Tables.SCORED_TOKENS.tableName()) != null);
    }
  }

  @Test
  @Order(5)
  void badInputFailsBeforeAnyWork() {
    String out = tmp.resolve("bad").toString();
    assertThrows(IllegalArgumentException.class,
        () -> new TitokJob(spark, settings(out, "llama2xs", "lt.titok.k-percent=0"), false));
    assertThrows(IllegalArgumentException.class,
        () -> new TitokJob(spark, settings(out, "llama2xs", "lt.titok.k-percent=101"), false));
    assertThrows(IllegalArgumentException.class,
        () -> new TitokJob(spark, settings(out, "llama2xs", "lt.titok.seed-examples=0"), false));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> new TitokJob(spark, settings(out, "llama2xs",
            "lt.titok.target-model=/nonexistent/model"), false));
    assertTrue(e.getMessage().contains("target-model"), e.getMessage());
    // An adapter for a different base: stories260K's adapter on babyllama.
    e = assertThrows(IllegalArgumentException.class,
        () -> new TitokJob(spark, settings(out, "llama2xs",
            "lt.titok.source-model=" + model("babyllama-tok105")), false).run("generate"));
    assertTrue(e.getMessage().contains("does not fit"), e.getMessage());
    // M larger than the pool.
    StageStore same = new StageStore(spark, tmp.resolve("same").toString());
    var big = new org.loratransplant.recipes.Transplant(spark, settings(out, "llama2xs",
        "lt.titok.samples=1000"), same, same, 42, true).selectSettings();
    Dataset<Row> scored = same.read(Tables.SCORED_SAMPLES);
    e = assertThrows(IllegalArgumentException.class,
        () -> org.loratransplant.pipeline.select.SelectStage.select(scored, big, scored.count()));
    assertTrue(e.getMessage().contains("samples requested"), e.getMessage());
    assertThrows(IllegalArgumentException.class,
        () -> new TitokJob(spark, settings(out, "llama2xs", "lt.titok.pool-factor=0"), false));
    // An unknown task format.
    RuntimeException r = assertThrows(RuntimeException.class,
        () -> new TitokJob(spark, settings(tmp.resolve("fmt").toString(), "llama2xs",
            "lt.task.file=" + tmp.resolve("task.xml")), false).run("generate"));
    assertTrue(r.getMessage().contains("task.xml"), r.getMessage());
    assertFalse(Files.exists(tmp.resolve("fmt").resolve("pool")), "nothing written");
  }
}
