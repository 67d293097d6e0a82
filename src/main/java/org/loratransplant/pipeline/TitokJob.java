package org.loratransplant.pipeline;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.loratransplant.config.Experiment;
import org.loratransplant.config.Settings;
import org.loratransplant.eval.Evaluator;
import org.loratransplant.eval.Reports;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.model.Devices;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.model.ModelConfig;
import org.loratransplant.pipeline.align.AlignStage;
import org.loratransplant.pipeline.evaluate.EvaluateStage;
import org.loratransplant.pipeline.expert.ExpertTraining;
import org.loratransplant.pipeline.generate.GenerateStage;
import org.loratransplant.pipeline.generate.NearDuplicates;
import org.loratransplant.pipeline.score.ScoreStage;
import org.loratransplant.pipeline.select.SelectStage;
import org.loratransplant.pipeline.train.TrainStage;
import org.loratransplant.table.Tables;
import org.loratransplant.task.Split;
import org.loratransplant.task.Task;
import org.loratransplant.task.TaskFiles;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The TiTok transplant: generate, score, select, align, train, evaluate. Each stage's output is
 * committed with a hash of everything it depends on; a rerun skips stages whose output is complete
 * for the same hash and redoes the rest ({@code force} redoes all).
 */
public final class TitokJob {
  private static final Logger LOG = LoggerFactory.getLogger(TitokJob.class);
  public static final List<String> STAGES = List.of("generate", "score", "select", "align",
      "train", "evaluate");

  private final SparkSession spark;
  private final Settings settings;
  private final Experiment exp;
  private final TitokSettings s;
  private final boolean force;
  private final StageStore store;
  private final Map<String, ObjectNode> stageStats = new LinkedHashMap<>();
  private final ObjectMapper json = new ObjectMapper();

  /** Validates the whole configuration and the inputs before any work. */
  public TitokJob(SparkSession spark, Settings settings, boolean force) {
    this.spark = spark;
    this.settings = settings;
    this.exp = new Experiment(settings);
    this.s = TitokSettings.from(exp);
    this.force = force;
    this.store = new StageStore(spark, s.out());
    exp.trainer();
    exp.lora(s.targetModel());
    exp.evaluation();
    checkModelDir(s.sourceModel(), "source-model");
    checkModelDir(s.targetModel(), "target-model");
  }

  private static void checkModelDir(String dir, String key) {
    Path p = Path.of(dir);
    if (!Files.isRegularFile(p.resolve("config.json"))) {
      throw new IllegalArgumentException("lt.titok." + key + " = " + dir + ": not a model "
          + "directory (no config.json)");
    }
    if (!Files.isRegularFile(p.resolve("tokenizer.json"))) {
      throw new IllegalArgumentException("lt.titok." + key + " = " + dir + ": no tokenizer.json "
          + "(TiTok needs text)");
    }
    ModelConfig.load(p);
  }

  public TitokSettings titok() {
    return s;
  }

  public StageStore store() {
    return store;
  }

  /** Runs the stages in order (up to {@code lastStage} inclusive); returns the summary. */
  public ObjectNode run(String lastStage) {
    if (!STAGES.contains(lastStage)) {
      throw new IllegalArgumentException("unknown stage '" + lastStage + "' (" + STAGES + ")");
    }
    Task task = TaskFiles.load(exp.taskFile());
    Split split = Split.of(task, exp.testFraction(), exp.splitSeed());
    var seeds = split.seedExamples(s.seedExamples());
    ensureExpert();
    checkAdapterFitsSource();
    checkRun();
    LOG.info("TiTok run at {}: {} -> {} on {} (M={}, pool {}, k={}%, selection per {})",
        s.out(), s.sourceModel() + " + " + s.sourceAdapter(), s.targetModel(), task.name(),
        s.samples(), s.poolSize(), s.kPercent(), s.perBatchSelection() ? "batch" : "sample");
    String h0 = hash("generate", s.sourceModel(), s.sourceAdapter(), adapterFingerprint(),
        exp.taskFile(), exp.splitSeed(), exp.testFraction(), s.seedExamples(),
        s.exampleTemplate(), s.queryTemplate(), s.answerTemplate(), s.temperature(), s.topP(),
        s.maxQueryTokens(), s.maxResponseTokens(), s.poolSize(), s.dedupRouge(),
        s.rougeThreshold(), s.seed());
    String h1 = hash("score", h0);
    String h2 = hash("select", h1, s.samples(), s.kPercent(), s.perBatchSelection(),
        s.selectionGroup());
    String h3 = hash("align", h2, s.targetModel());
    String h4 = hash("train", h3, exp.raw().getConfig("lora").root().render(),
        exp.raw().getConfig("train").root().render(), exp.seed());
    String h5 = hash("evaluate", h4, exp.raw().getConfig("eval").root().render());
    List<Step> steps = List.of(new Step("generate", h0, () -> generate(seeds)),
        new Step("score", h1, this::score), new Step("select", h2, this::select),
        new Step("align", h3, this::align), new Step("train", h4, () -> train(h4)),
        new Step("evaluate", h5, () -> evaluate(task, split, h5)));
    for (Step step : steps) {
      stage(step.name(), step.hash(), step.work());
      if (step.name().equals(lastStage)) {
        break;
      }
    }
    return summary(lastStage);
  }

  /**
   * Outputs are committed with this marker first and re-marked with the stage hash only when the
   * whole stage has finished: a run killed in between redoes the stage.
   */
  private static final String PENDING = "pending";

  /** The outputs of each stage, the one whose marker decides "complete" last. */
  private static final Map<String, List<String>> OUTPUTS = Map.of(
      "generate", List.of(Tables.DROPPED.tableName(), Tables.POOL.tableName()),
      "score", List.of(Tables.SCORED_TOKENS.tableName(), Tables.SCORED_SAMPLES.tableName()),
      "select", List.of(Tables.SELECTED.tableName()),
      "align", List.of(Tables.TRAINING.tableName()),
      "train", List.of("adapter"),
      "evaluate", List.of("evaluation"));

  private interface Work {
    ObjectNode run();
  }

  /** A stage with the hash of everything its output depends on. */
  private record Step(String name, String hash, Work work) {}

  private void stage(String name, String hash, Work work) {
    List<String> outputs = OUTPUTS.get(name);
    if (!force && outputs.stream().allMatch(o -> hash.equals(store.completedHash(o)))) {
      LOG.info("stage {}: complete for these settings, skipped", name);
      ObjectNode st = json.createObjectNode().put("skipped", true);
      stageStats.put(name, st);
      return;
    }
    LOG.info("stage {}: running", name);
    long t0 = System.nanoTime();
    ObjectNode st = work.run();
    outputs.forEach(o -> store.mark(o, hash));
    st.put("seconds", (System.nanoTime() - t0) / 1e9);
    if (st.has("tokens")) {
      st.put("tokens_per_second", st.get("tokens").asDouble() / st.get("seconds").asDouble());
    }
    stageStats.put(name, st);
    LOG.info("stage {}: done in {} s", name, String.format("%.1f", st.get("seconds").asDouble()));
  }

  // ---- stages ----------------------------------------------------------------------------

  private ObjectNode generate(List<org.loratransplant.task.TaskExample> seeds) {
    ObjectNode st = json.createObjectNode();
    try (Progress p = new Progress(spark.sparkContext(), "generate", "samples", s.poolSize())) {
      Dataset<Row> raw = GenerateStage.generate(spark, s, seeds, p);
      NearDuplicates.Result r = NearDuplicates.filter(spark, raw, s.dedupRouge(),
          s.rougeThreshold(), s.seed());
      store.commit(Tables.DROPPED, r.dropped(), PENDING);
      store.commit(Tables.POOL, r.kept(), PENDING);
      raw.unpersist();
      st.put("generated", s.poolSize());
      st.put("tokens", p.tokenCount());
    }
    return st;
  }

  private ObjectNode score() {
    ObjectNode st = json.createObjectNode();
    Dataset<Row> pool = store.read(Tables.POOL);
    long n = pool.count();
    try (Progress p = new Progress(spark.sparkContext(), "score", "samples", n)) {
      Dataset<Row> wide = ScoreStage.score(pool, s, p).cache();
      store.commit(Tables.SCORED_SAMPLES, ScoreStage.samples(wide), PENDING);
      store.commit(Tables.SCORED_TOKENS, ScoreStage.tokens(wide), PENDING, "bucket");
      wide.unpersist();
      st.put("samples", n);
      st.put("tokens", p.tokenCount());
    }
    return st;
  }

  private ObjectNode select() {
    ObjectNode st = json.createObjectNode();
    Dataset<Row> scored = store.read(Tables.SCORED_SAMPLES);
    long pool = scored.count();
    store.commit(Tables.SELECTED, SelectStage.select(scored, s, pool), PENDING);
    st.put("pool", pool);
    st.put("kept", s.samples());
    return st;
  }

  private ObjectNode align() {
    ObjectNode st = json.createObjectNode();
    store.commit(Tables.TRAINING, AlignStage.align(store.read(Tables.SELECTED), s), PENDING);
    st.put("same_tokenizer", AlignStage.sameTokenizer(s.sourceModel(), s.targetModel()));
    return st;
  }

  private ObjectNode train(String hash) {
    ObjectNode st = json.createObjectNode();
    Dataset<Row> training = store.read(Tables.TRAINING);
    try (LanguageModel target = LanguageModel.load(Path.of(s.targetModel()),
        Devices.choose(s.device()))) {
      Path local = Files.createTempDirectory("lt-adapter-").resolve("adapter");
      Path checkpoints = Path.of(System.getProperty("java.io.tmpdir"), "lt-checkpoints-" + hash);
      TrainStage.Result r = TrainStage.train(training, target, exp.lora(s.targetModel()),
          exp.trainer(), exp.seed(), local, checkpoints, Map.of("lt_settings.conf",
              settings.render()));
      store.commitLocalDirectory(local, "adapter", PENDING);
      st.put("examples", r.examples());
      st.put("kept_token_fraction", r.keptTokenFraction());
      st.put("steps", r.training().steps());
      st.put("final_loss", r.training().losses().get(r.training().losses().size() - 1));
      st.put("tokens", r.training().tokens());
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
    return st;
  }

  private ObjectNode evaluate(Task task, Split split, String hash) {
    List<Evaluator.Report> reports = EvaluateStage.evaluate(exp.evaluation(), task, split.test(),
        s.targetModel(), store.localCopy("adapter"), s.sourceModel(), s.sourceAdapter(),
        s.device());
    String md = Reports.markdown(task.name() + " (test split)", reports);
    System.out.println(md);
    try {
      Path local = Files.createTempDirectory("lt-eval-").resolve("evaluation");
      Files.createDirectories(local);
      Files.writeString(local.resolve("evaluation.md"), md);
      Files.writeString(local.resolve("evaluation.json"), Reports.toJson(
          Reports.json(task.name(), reports, true)));
      store.commitLocalDirectory(local, "evaluation", PENDING);
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
    ObjectNode st = json.createObjectNode();
    st.set("report", Reports.json(task.name(), reports, false));
    return st;
  }

  // ---- run bookkeeping ---------------------------------------------------------------------

  /** Trains the source expert first when its adapter does not exist and a recipe is given. */
  private void ensureExpert() {
    if (PeftFormat.isAdapterDir(Path.of(s.sourceAdapter()))) {
      return;
    }
    if (s.expertConf().isEmpty()) {
      throw new IllegalArgumentException("lt.titok.source-adapter = " + s.sourceAdapter()
          + ": no PEFT adapter there (and lt.titok.expert-conf is empty)");
    }
    LOG.info("source adapter {} missing: training it with {}", s.sourceAdapter(),
        s.expertConf());
    Settings expert = Settings.load(Path.of(s.expertConf()), List.of(
        "lt.task.file=" + exp.taskFile(), "lt.device=" + s.device()));
    ExpertTraining.plan(Path.of(s.sourceModel()), Path.of(s.sourceAdapter()), expert, false)
        .execute();
  }

  private void checkAdapterFitsSource() {
    ModelConfig base = ModelConfig.load(Path.of(s.sourceModel()));
    try (ai.djl.ndarray.NDManager m = ai.djl.ndarray.NDManager.newBaseManager(
        ai.djl.Device.cpu())) {
      PeftFormat.read(Path.of(s.sourceAdapter()), base, m).close();
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("lt.titok.source-adapter does not fit "
          + "lt.titok.source-model: " + e.getMessage(), e);
    }
  }

  /** Refuses an output directory that holds a run of other settings, unless forced. */
  private void checkRun() {
    String runHash = Settings.hash(settings.config().withoutPath("eval").withoutPath("device"));
    String previous = store.completedHash("run");
    if (previous != null && !previous.equals(runHash) && !force) {
      throw new IllegalArgumentException(s.out() + " holds a run with other settings; use "
          + "another lt.titok.out or --force");
    }
    if (previous == null || !previous.equals(runHash)) {
      try {
        Path local = Files.createTempDirectory("lt-run-").resolve("run");
        Files.createDirectories(local);
        Files.writeString(local.resolve("settings.conf"), settings.render());
        store.commitLocalDirectory(local, "run", runHash);
      } catch (java.io.IOException e) {
        throw new java.io.UncheckedIOException(e);
      }
    }
  }

  private String adapterFingerprint() {
    try {
      MessageDigest md = MessageDigest.getInstance("SHA-256");
      md.update(Files.readAllBytes(Path.of(s.sourceAdapter(), PeftFormat.WEIGHTS_FILE)));
      return HexFormat.of().formatHex(md.digest()).substring(0, 16);
    } catch (Exception e) {
      throw new IllegalStateException("cannot read the source adapter: " + e.getMessage(), e);
    }
  }

  static String hash(Object... parts) {
    try {
      MessageDigest md = MessageDigest.getInstance("SHA-256");
      for (Object p : parts) {
        md.update(String.valueOf(p).getBytes(StandardCharsets.UTF_8));
        md.update((byte) 0);
      }
      return HexFormat.of().formatHex(md.digest()).substring(0, 16);
    } catch (java.security.NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  /** Registers every complete table as a Spark SQL view named after it. */
  public void registerViews() {
    for (Tables t : Tables.values()) {
      if (store.completedHash(t.tableName()) != null) {
        spark.read().parquet(store.path(t)).createOrReplaceTempView(t.tableName());
      }
    }
  }

  private ObjectNode summary(String lastStage) {
    registerViews();
    ObjectNode out = json.createObjectNode();
    out.put("out", s.out());
    out.put("last_stage", lastStage);
    ObjectNode rows = out.putObject("rows");
    for (Tables t : Tables.values()) {
      if (store.completedHash(t.tableName()) != null) {
        rows.put(t.tableName(), spark.table(t.tableName()).count());
      }
    }
    if (rows.has("scored_samples")) {
      Row r = spark.sql("SELECT avg(mean_excess), sum(n_tokens) FROM scored_samples").first();
      out.put("mean_excess_pool", r.isNullAt(0) ? 0 : r.getDouble(0));
    }
    if (rows.has("selected")) {
      Row r = spark.sql("SELECT avg(mean_excess), sum(aggregate(mask, 0D, (a, x) -> a + x)),"
          + " sum(size(mask)) FROM selected").first();
      out.put("mean_excess_selected", r.getDouble(0));
      out.put("kept_token_fraction_source", r.getDouble(1) / Math.max(1, r.getLong(2)));
      out.put("kept_sample_fraction", rows.get("selected").asDouble()
          / Math.max(1, rows.path("scored_samples").asDouble(1)));
    }
    ObjectNode stages = out.putObject("stages");
    stageStats.forEach(stages::set);
    ArrayNode order = out.putArray("stage_order");
    new ArrayList<>(stageStats.keySet()).forEach(order::add);
    store.writeText("summary.json", Reports.toJson(out));
    return out;
  }
}
