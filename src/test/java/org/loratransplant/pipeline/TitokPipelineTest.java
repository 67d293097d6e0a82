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
    // The refusal names what changed, so the old value can be set back.
    assertTrue(e.getMessage().contains("(changed: lt.titok.k-percent: 70 -> 50)"),
        e.getMessage());
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

  /** Copies a complete output of one run directory into another (its marker too). */
  static void copyOutput(Path from, Path to, String name) throws Exception {
    try (java.util.stream.Stream<Path> files = Files.walk(from.resolve(name))) {
      for (Path f : files.toList()) {
        Path dst = to.resolve(from.relativize(f).toString());
        if (Files.isDirectory(f)) {
          Files.createDirectories(dst);
        } else {
          Files.copy(f, dst);
        }
      }
    }
  }

  /**
   * Samples whose scores come out non-finite go to the failed table with the reason and are left
   * out of scored_samples, scored_tokens and the selection; the job fails only past
   * lt.titok.max-failed-fraction, saying how many of how many, naming ids and the table, and
   * raising the fraction reruns the stage on the same directory.
   */
  @Test
  @Order(6)
  void nonFiniteScoresGoToTheFailedTableAndFailTheJobOnlyPastTheFraction() throws Exception {
    Path out = tmp.resolve("nan");
    // The "same" run's pool, so that only scoring runs here.
    copyOutput(tmp.resolve("same"), out, "pool");
    copyOutput(tmp.resolve("same"), out, "dropped");
    StageStore store = new StageStore(spark, out.toString());
    List<Long> ids = store.read(Tables.POOL).orderBy("sample_id").select("sample_id")
        .collectAsList().stream().map(r -> r.getLong(0)).toList();
    long n = ids.size();
    List<Long> bad = List.of(ids.get(1), ids.get(4), ids.get(7));
    System.setProperty("lt.inject-non-finite", bad.stream().map(String::valueOf)
        .collect(Collectors.joining(",")));
    try {
      // 3 of n >= 12 is over 10 %: the stage fails, and says so.
      IllegalStateException e = assertThrows(IllegalStateException.class,
          () -> new TitokJob(spark, settings(out.toString(), "llama2xs",
              "lt.titok.max-failed-fraction=0.1"), false).run("select"));
      String m = e.getMessage();
      assertTrue(m.startsWith("score: 3 of " + n + " samples failed") && m.contains("more than "
          + "lt.titok.max-failed-fraction = 10.0%"), m);
      assertTrue(m.contains("sample_id " + bad.get(0) + " (the expert (source + adapter) "
          + "log-prob of response token 0"), m);
      assertTrue(m.contains(out + "/failed"), m);
      List<Row> failed = store.read(Tables.FAILED).collectAsList();
      assertEquals(bad, failed.stream().map(r -> r.<Long>getAs("sample_id")).sorted().toList());
      assertTrue(failed.stream().allMatch(r -> r.<String>getAs("stage").equals("score")
          && r.<String>getAs("reason").contains("NaN")));
      // Within 25 % it goes on (same directory: the fraction is not part of the run's settings).
      ObjectNode summary = new TitokJob(spark, settings(out.toString(), "llama2xs",
          "lt.titok.max-failed-fraction=0.25"), false).run("select");
      assertEquals(3, summary.get("rows").get("failed").asLong());
      assertEquals(3, summary.get("stages").get("score").get("failed").asLong());
    } finally {
      System.clearProperty("lt.inject-non-finite");
    }
    Dataset<Row> scored = store.read(Tables.SCORED_SAMPLES);
    assertEquals(n - 3, scored.count());
    for (Tables t : List.of(Tables.SCORED_SAMPLES, Tables.SCORED_TOKENS, Tables.SELECTED)) {
      assertEquals(0, store.read(t).where(org.apache.spark.sql.functions.col("sample_id")
          .isin(bad.toArray())).count(), t + " holds no failed sample");
    }
    // Queryable as a view, as jobs/lt sql registers it.
    assertEquals(3L, spark.sql("SELECT count(*) FROM failed WHERE stage = 'score'").first()
        .getLong(0));
    // Every other sample scores as in the run without faults.
    assertEquals(rows(new StageStore(spark, tmp.resolve("same").toString())
        .read(Tables.SCORED_SAMPLES).where(org.apache.spark.sql.functions.col("sample_id")
        .isin(bad.toArray()).unary_$bang()), "sample_id", "mean_excess"),
        rows(scored, "sample_id", "mean_excess"));
  }

  /**
   * The train stage checkpoints into the run directory (not the driver's temp folder shared by
   * every run of those settings); a driver that dies after step 4 leaves them there, the rerun
   * resumes at step 4 and ends with the adapter of the uninterrupted run, then removes them.
   */
  @Test
  @Order(7)
  void aTrainStageKilledAfterACheckpointResumesFromItInTheRunDirectory() throws Exception {
    // Bit-for-bit equality needs the same thread counts in both runs (see IntraOpThreads).
    System.setProperty("lt.threads.adaptive", "false");
    try {
      killAndResume();
    } finally {
      System.clearProperty("lt.threads.adaptive");
    }
  }

  private void killAndResume() throws Exception {
    Path cell = tmp.resolve("resume");
    StageStore pool = new StageStore(spark, tmp.resolve("same").toString());
    StageStore cellStore = new StageStore(spark, cell.toString());
    Settings st = TitokJob.withMethod(settings(cell.toString(), "llama2xs",
        "lt.train.checkpoint-every=2"));
    System.setProperty("lt.fail-after-step", "4");
    try {
      IllegalStateException e = assertThrows(IllegalStateException.class,
          () -> new RecipeRunner(false).run(new org.loratransplant.recipes.Transplant(spark, st,
              pool, cellStore, 42, true).recipe(), "train"));
      assertTrue(e.getMessage().contains("after training step 4"), e.getMessage());
    } finally {
      System.clearProperty("lt.fail-after-step");
    }
    List<Path> ckpts;
    try (java.util.stream.Stream<Path> f = Files.list(cell.resolve("_checkpoints"))) {
      ckpts = f.toList();
    }
    assertEquals(1, ckpts.size(), ckpts.toString());
    assertTrue(ckpts.get(0).getFileName().toString().startsWith("train-"));
    assertTrue(Files.isRegularFile(ckpts.get(0).resolve("checkpoint-00000004")
        .resolve("trainer_state.json")), "checkpoint of step 4 in the run directory");

    java.util.Map<String, ObjectNode> stats = new RecipeRunner(false).run(
        new org.loratransplant.recipes.Transplant(spark, st, pool, cellStore, 42, true).recipe(),
        "train");
    assertTrue(stats.get("align").path("skipped").asBoolean());
    assertEquals(4, stats.get("train").get("resumed_from_step").asInt(), "resumed at step 4");
    assertEquals(6, stats.get("train").get("steps").asInt());
    assertFalse(Files.exists(cell.resolve("_checkpoints")), "removed once the adapter is in");
    // The uninterrupted run ("same", no checkpoints) trained the same data with the same seed.
    org.loratransplant.testing.Adapters.assertSameWeights(
        tmp.resolve("same").resolve("adapter/adapter_model.safetensors"),
        cell.resolve("adapter/adapter_model.safetensors"));
  }

  /**
   * {@code lt.titok.precision=bf16} reaches the executors: the pool's expert and amateur
   * log-probs are bf16's, i.e. near float32's recomputed on the same tokens but not equal.
   */
  @Test
  @Order(8)
  void bf16PrecisionScoresThePoolInBf16() {
    String out = tmp.resolve("bf16").toString();
    new TitokJob(spark, settings(out, "llama2xs", "lt.titok.precision=bf16"), false)
        .run("score");
    List<Row> rows = new StageStore(spark, out).read(Tables.SCORED_SAMPLES)
        .select("prompt_ids", "token_ids", "logp_expert", "logp_amateur").collectAsList();
    assertFalse(rows.isEmpty());
    // The stage's stats say which format its partitions computed in: all of them bf16.
    for (String stage : List.of("generate", "score")) {
      JsonNode formats = SharedData.json(Path.of(out, "_stats", stage + ".json"))
          .get("precision");
      List<String> names = new ArrayList<>();
      formats.fieldNames().forEachRemaining(names::add);
      assertEquals(List.of("bf16"), names, stage + ": " + formats);
      assertTrue(formats.get("bf16").asLong() >= 1, stage + ": " + formats);
    }
    try (org.loratransplant.model.LanguageModel lm = org.loratransplant.model.LanguageModel
            .load(SharedData.model("stories260K"), ai.djl.Device.cpu());
        org.loratransplant.lora.LoraAdapter adapter = org.loratransplant.lora.PeftFormat.read(
            expert, lm.config(), lm.model().manager())) {
      List<int[]> prompts = new ArrayList<>();
      List<int[]> responses = new ArrayList<>();
      for (Row r : rows) {
        prompts.add(r.getList(0).stream().mapToInt(x -> (Integer) x).toArray());
        responses.add(r.getList(1).stream().mapToInt(x -> (Integer) x).toArray());
      }
      List<float[]> expertFp32 = lm.logprobs(prompts, responses, adapter, 16);
      List<float[]> amateurFp32 = lm.logprobs(prompts, responses, null, 16);
      double sum = 0;
      double max = 0;
      long n = 0;
      for (int i = 0; i < rows.size(); i++) {
        for (int col = 2; col <= 3; col++) {
          List<Float> bf16 = rows.get(i).getList(col);
          float[] fp32 = (col == 2 ? expertFp32 : amateurFp32).get(i);
          for (int j = 0; j < fp32.length; j++) {
            double d = Math.abs(bf16.get(j) - fp32[j]);
            sum += d;
            max = Math.max(max, d);
            n++;
          }
        }
      }
      System.out.printf("bf16 pool scores against float32: mean |diff| %.4f, max %.4f over %d%n",
          sum / n, max, n);
      assertTrue(max > 1e-4, "equal to float32: bf16 did not run");
      assertTrue(sum / n < 0.05 && max < 0.5, "mean " + sum / n + " max " + max);
      // What the error does to TiTok's choices: the top 70 % of each sample's tokens by excess,
      // and the samples ranked by mean excess, under the bf16 scores and under float32.
      List<float[]> excessBf16 = new ArrayList<>();
      List<float[]> excessFp32 = new ArrayList<>();
      for (int i = 0; i < rows.size(); i++) {
        List<Float> e16 = rows.get(i).getList(2);
        List<Float> a16 = rows.get(i).getList(3);
        float[] x16 = new float[e16.size()];
        float[] x32 = new float[e16.size()];
        for (int j = 0; j < x16.length; j++) {
          x16[j] = e16.get(j) - a16.get(j);
          x32[j] = expertFp32.get(i)[j] - amateurFp32.get(i)[j];
        }
        excessBf16.add(x16);
        excessFp32.add(x32);
      }
      SelectionAgreement agree = SelectionAgreement.of(excessFp32, excessBf16, 0.7,
          rows.size() / 2);
      System.out.println("bf16 against float32 selections: " + agree);
      assertTrue(agree.tokenFlips() <= Math.max(2, agree.tokens() / 50), agree.toString());
      assertTrue(agree.sampleOverlap() >= 0.9, agree.toString());
    }
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> new TitokJob(spark, settings(out, "llama2xs", "lt.titok.precision=int8"), false));
    assertTrue(e.getMessage().contains("precision must be fp32, bf16, f16 or auto, got 'int8'"),
        e.getMessage());
  }
}
