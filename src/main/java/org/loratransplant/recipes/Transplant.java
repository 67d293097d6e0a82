package org.loratransplant.recipes;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
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
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.model.Devices;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.pipeline.FailedRows;
import org.loratransplant.pipeline.Keys;
import org.loratransplant.pipeline.ModelDirs;
import org.loratransplant.pipeline.ModelSpec;
import org.loratransplant.pipeline.Recipe;
import org.loratransplant.pipeline.RecipeRunner;
import org.loratransplant.pipeline.Stage;
import org.loratransplant.pipeline.StageStore;
import org.loratransplant.pipeline.align.AlignSettings;
import org.loratransplant.pipeline.align.AlignStage;
import org.loratransplant.pipeline.generate.PoolSettings;
import org.loratransplant.pipeline.generate.PoolStages;
import org.loratransplant.pipeline.select.SelectSettings;
import org.loratransplant.pipeline.select.SelectStage;
import org.loratransplant.pipeline.train.CheckpointDir;
import org.loratransplant.pipeline.train.TrainSettings;
import org.loratransplant.pipeline.train.TrainStage;
import org.loratransplant.table.Tables;
import org.loratransplant.task.Split;
import org.loratransplant.task.Task;
import org.loratransplant.task.TaskExample;
import org.loratransplant.train.TrainingExample;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One transplant: a method ({@link MethodSettings}) applied to the pool of one (expert, task) for
 * one target and seed. It derives each stage's small settings record from the run's settings and
 * lays out the recipe: the pool's {@code generate} and {@code score} (shared, in the pool store,
 * by every method whose pool settings agree), then {@code tune} (when the method tunes k % and the
 * learning rate on a validation split), {@code select}, {@code align}, {@code train} and
 * {@code evaluate} in the cell's own store. Methods that only evaluate (vanilla, expert) are one
 * {@code evaluate} stage.
 */
public final class Transplant {
  private static final Logger LOG = LoggerFactory.getLogger(Transplant.class);
  private static final ObjectMapper JSON = new ObjectMapper();
  /** Outputs of the cell's stages. */
  static final String TUNING = "tuning";
  static final String ADAPTER = "adapter";
  static final String EVALUATION = "evaluation";
  static final String DISCRIMINATOR = "discriminator";

  private final SparkSession spark;
  private final Settings settings;
  private final Experiment exp;
  private final TitokSettings t;
  private final MethodSettings m;
  private final StageStore poolStore;
  private final StageStore cellStore;
  private final Task task;
  private final Split split;
  private final long poolSeed;
  private final boolean fullReport;

  /**
   * @param poolSeed the seed of the synthetic pool (the run's seed; a comparison keeps it fixed
   *     while the training seed varies, so every seed trains on the same pool)
   * @param fullReport evaluate vanilla target, transplanted target and expert side by side (the
   *     titok command) instead of the cell's own system only (the comparison)
   */
  public Transplant(SparkSession spark, Settings settings, StageStore poolStore,
      StageStore cellStore, long poolSeed, boolean fullReport) {
    this.spark = spark;
    this.settings = settings;
    this.exp = new Experiment(settings);
    this.t = TitokSettings.from(exp);
    this.m = MethodSettings.from(exp);
    this.poolStore = poolStore;
    this.cellStore = cellStore;
    this.poolSeed = poolSeed;
    this.fullReport = fullReport;
    this.task = org.loratransplant.task.TaskFiles.load(exp.taskFile());
    this.split = Split.of(task, exp.testFraction(), exp.splitSeed());
    exp.trainer();
    exp.lora(t.targetModel());
    exp.evaluation();
    pool();
    selectSettings();
    trainSettings();
    if (m.discriminator()) {
      discriminatorSettings();
    }
    checkModelSide(exp, m);
    if (!m.compressTarget().isEmpty()) {
      checkCompressed(t.targetModel(), m.compressTarget(), "lt.titok.target-model");
    }
    if (m.modelSide().compressed()) {
      checkCompressed(t.targetModel(), m.modelSide().compress(), "lt.titok.target-model");
    }
    if (m.modelSide().kind().equals("migrate-layer")
        && !ModelDirs.local(t.targetModel()).toAbsolutePath().normalize().equals(
            ModelDirs.local(t.sourceModel()).toAbsolutePath().normalize())) {
      throw new IllegalArgumentException("lt.method.model-side.kind = migrate-layer runs on the "
          + "source base itself, but lt.titok.target-model = " + t.targetModel() + " (jobs/lt "
          + "compare sets it; jobs/lt migrate-layer migrates an adapter on its own)");
    }
  }

  /**
   * The settings a model-side row reads besides lt.method (lt.calora, lt.migrate); checked
   * before any work.
   */
  static void checkModelSide(Experiment exp, MethodSettings m) {
    switch (m.modelSide().kind()) {
      case "ca-lora" -> org.loratransplant.calora.CaLoraJob.settings(exp);
      case "migrate-layer" -> {
        org.loratransplant.migrate.MigrationJob.settings(exp);
        try {
          org.loratransplant.migrate.MigrationJob.dataKind(exp);
        } catch (com.typesafe.config.ConfigException e) {
          throw new IllegalArgumentException("lt.migrate: " + e.getMessage(), e);
        }
      }
      default -> { }
    }
  }

  /**
   * A row on a compressed model runs on a copy made by {@code jobs/lt compress} (jobs/lt compare
   * makes it once per run): {@code dir} must be one, with {@code spec}'s method.
   */
  private static void checkCompressed(String dir, String spec, String key) {
    var level = org.loratransplant.calora.CompressionLevel.parse(spec);
    Path local = ModelDirs.local(dir);
    if (!Files.isRegularFile(local.resolve(org.loratransplant.compress.Compressor.REPORT_FILE))
        || org.loratransplant.compress.Compressor.methodOf(local)
        != level.settings().method()) {
      throw new IllegalArgumentException(key + " = " + dir + " is not a " + level.id()
          + " copy (jobs/lt compress makes one; jobs/lt compare makes it for the row)");
    }
  }

  public TitokSettings titok() {
    return t;
  }

  public MethodSettings method() {
    return m;
  }

  public Task task() {
    return task;
  }

  public StageStore cellStore() {
    return cellStore;
  }

  // ---- each stage's settings ----------------------------------------------------------------

  public PoolSettings pool() {
    return pool(t, m, poolSeed);
  }

  /** The pool a method needs: the expert writes the queries, or the target (TransLoRA). */
  static PoolSettings pool(TitokSettings t, MethodSettings m, long poolSeed) {
    boolean targetQueries = m.queries().equals("target");
    return new PoolSettings(t.sourceModel(), t.sourceAdapter(),
        targetQueries ? t.targetModel() : t.sourceModel(),
        targetQueries ? null : t.sourceAdapter(), t.poolSize(), t.maxRounds(), t.dedupRouge(),
        t.rougeThreshold(), t.temperature(), t.topP(), t.maxQueryTokens(), t.maxResponseTokens(),
        t.generateBatch(), t.scoreBatch(), t.partitions(), poolSeed, t.device(),
        t.answerTemplate(), t.exampleTemplate(), t.queryTemplate(), t.precision());
  }

  public SelectSettings selectSettings() {
    try {
      return new SelectSettings(t.sourceModel(), t.samples(), m.sampleFilter(),
          m.tokenSelection(), t.kPercent(), t.perBatchSelection(), t.selectionGroup(),
          m.structuralTokens(), exp.seed(), classCounts());
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("lt.method: " + e.getMessage(), e);
    }
  }

  /** Each answer class's count in the training split (for the balanced sample filter). */
  Map<String, Long> classCounts() {
    Map<String, Long> counts = new LinkedHashMap<>();
    if (task.answerSet().isEmpty()) {
      return counts;
    }
    for (TaskExample e : split.train()) {
      counts.merge(e.target().strip(), 1L, Long::sum);
    }
    return counts;
  }

  TrainSettings trainSettings() {
    var lora = exp.lora(t.targetModel());
    TrainSettings.AdaLora ada = m.adapter().equals("adalora") ? new TrainSettings.AdaLora(
        org.loratransplant.lora.adalora.AdaLoraBudget.from(exp.section("adalora")),
        MethodSettings.initR(exp.raw().getDouble("adalora.init-r-factor"), lora.r())) : null;
    return new TrainSettings(t.targetModel(), lora, exp.trainer(),
        m.objective(), m.kdWeight(), m.kdTemperature(), t.expert(), exp.seed(), t.device(), ada);
  }

  /** What an AdaLoRA adds to the keys of the stages that train (a LoRA: nothing, so runs made
   * before AdaLoRA rows existed keep their keys). */
  private String withAdapter(String key) {
    return m.adapter().equals("lora") ? key : Keys.of(key, m.adapter(),
        exp.raw().getConfig("adalora"));
  }

  // ---- the recipe -------------------------------------------------------------------------

  /** The stages of this transplant, pool stages first. */
  public Recipe recipe() {
    List<Stage> stages = new ArrayList<>();
    if (!m.transfer().isEmpty()) {
      String key = Keys.of("transfer", m.transfer(), exp.raw().getConfig("transfer"),
          t.sourceModel(), sourceFingerprint(), t.targetModel());
      stages.add(Stage.of("transfer", List.of(t.sourceModel(), t.sourceAdapter(),
          t.targetModel()), cellStore, List.of(ADAPTER), key, this::transfer));
      String evalKey = Keys.of("evaluate", key, exp.raw().getConfig("eval"), fullReport,
          exp.taskFile().toAbsolutePath().normalize(), exp.testFraction(), exp.splitSeed());
      stages.add(Stage.of("evaluate", List.of(cellStore.path(ADAPTER),
          exp.taskFile().toString()), cellStore, List.of(EVALUATION), evalKey, this::evaluate));
    } else if (m.modelSide().enabled()) {
      String key = modelSideKey();
      stages.add(Stage.of(m.modelSide().kind(), List.of(t.sourceModel(), t.sourceAdapter(),
          t.targetModel()), cellStore, List.of(ADAPTER), key, this::modelSide));
      String evalKey = Keys.of("evaluate", key, exp.raw().getConfig("eval"), fullReport);
      stages.add(Stage.of("evaluate", List.of(cellStore.path(ADAPTER),
          exp.taskFile().toString()), cellStore, List.of(EVALUATION), evalKey, this::evaluate));
    } else if (m.evaluateOnly().isEmpty()) {
      PoolStages pool = new PoolStages(spark, pool(), split.seedExamples(t.seedExamples()),
          poolStore, sourceFingerprint(), Keys.of(exp.taskFile().toAbsolutePath().normalize(),
              exp.testFraction(), exp.splitSeed(), t.seedExamples()), t.maxFailedFraction(),
          t.continuousBatching());
      stages.add(pool.generate());
      stages.add(pool.score());
      String upstream = pool.scoreKey();
      if (m.discriminator()) {
        Stage d = discriminateStage(pool.scoreKey());
        stages.add(d);
        upstream = Keys.of(upstream, d.key());
      }
      if (m.tune().enabled()) {
        Stage tune = tuneStage(upstream);
        stages.add(tune);
        upstream = tune.key();
      }
      String selectKey = Keys.of("select", upstream, selectSettings());
      stages.add(Stage.of("select", List.of(poolStore.path(Tables.SCORED_SAMPLES)), cellStore,
          List.of(Tables.SELECTED.tableName()), selectKey,
          this::select));
      String alignKey = Keys.of("align", selectKey, t.targetModel());
      stages.add(Stage.of("align", List.of(cellStore.path(Tables.SELECTED)), cellStore,
          List.of(Tables.TRAINING.tableName(), StageStore.partitionName(Tables.FAILED, "align")),
          alignKey, this::align));
      String trainKey = withAdapter(Keys.of("train", alignKey, exp.raw().getConfig("lora"),
          exp.raw().getConfig("train"), exp.seed(), m.objective(), m.kdWeight(),
          m.kdTemperature()));
      stages.add(Stage.of("train", List.of(cellStore.path(Tables.TRAINING), t.targetModel()),
          cellStore, List.of(ADAPTER), trainKey, () -> train(trainKey)));
      String evalKey = Keys.of("evaluate", trainKey, exp.raw().getConfig("eval"), fullReport);
      stages.add(Stage.of("evaluate", List.of(cellStore.path(ADAPTER), exp.taskFile().toString()),
          cellStore, List.of(EVALUATION), evalKey, this::evaluate));
    } else {
      String evalKey = Keys.of("evaluate", m.evaluateOnly(), m.evaluateOnly().equals("expert")
          ? Keys.of(t.sourceModel(), sourceFingerprint()) : t.targetModel(),
          exp.taskFile().toAbsolutePath().normalize(), exp.testFraction(), exp.splitSeed(),
          exp.raw().getConfig("eval"));
      stages.add(Stage.of("evaluate", List.of(exp.taskFile().toString()), cellStore,
          List.of(EVALUATION), evalKey,
          this::evaluateReference));
    }
    return new Recipe(m.name(), stages);
  }

  // ---- stages -------------------------------------------------------------------------------

  /** The k %, M and learning rate the later stages use: tuned, or the settings' own. */
  record Choice(double kPercent, int samples, double learningRate) {}

  private Choice choice() {
    if (!m.tune().enabled()) {
      return new Choice(t.kPercent(), t.samples(), exp.trainer().learningRate());
    }
    String text = cellStore.readText(TUNING + "/tuning.json");
    if (text == null) {
      throw new IllegalStateException("tuning result missing in " + cellStore.path(TUNING));
    }
    try {
      JsonNode n = JSON.readTree(text).path("chosen");
      return new Choice(n.path("k_percent").asDouble(), n.path("samples").asInt(t.samples()),
          n.path("learning_rate").asDouble());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private SelectSettings chosenSelect() {
    Choice c = choice();
    return selectSettings().with(c.kPercent(), c.samples());
  }

  /** The scored pool, restricted to what TransLoRA's discriminator kept when it is on. */
  private Dataset<Row> scoredPool() {
    Dataset<Row> scored = poolStore.read(Tables.SCORED_SAMPLES);
    if (!m.discriminator()) {
      return scored;
    }
    String text = poolStore.readText(DISCRIMINATOR + "/kept.json");
    try {
      List<Long> ids = new ArrayList<>();
      JSON.readTree(text).path("kept_sample_ids").forEach(n -> ids.add(n.asLong()));
      return scored.where(org.apache.spark.sql.functions.col("sample_id").isin(ids.toArray()));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** M, or fewer when a filter left fewer samples (said in the log). */
  private SelectSettings fitted(SelectSettings s, long pool) {
    if (m.discriminator() && s.samples() > pool) {
      LOG.warn("the discriminator kept {} samples, fewer than M = {}: training on all of them",
          pool, s.samples());
      return s.with(s.kPercent(), (int) pool);
    }
    return s;
  }

  private ObjectNode select() {
    Dataset<Row> scored = scoredPool();
    long pool = scored.count();
    SelectSettings s = fitted(chosenSelect(), pool);
    cellStore.commit(Tables.SELECTED, SelectStage.select(scored, s, pool),
        RecipeRunner.PENDING);
    Row r = spark.read().parquet(cellStore.path(Tables.SELECTED)).selectExpr("avg(mean_excess)",
        "sum(aggregate(mask, 0D, (a, x) -> a + x))", "sum(size(mask))").first();
    ObjectNode st = JSON.createObjectNode();
    st.put("pool", pool);
    st.put("kept", s.samples());
    st.put("k_percent", s.kPercent());
    st.put("mean_excess_selected", r.isNullAt(0) ? 0 : r.getDouble(0));
    st.put("kept_token_fraction_source", r.getDouble(1) / Math.max(1, r.getLong(2)));
    return st;
  }

  private AlignSettings alignSettings(SelectSettings s) {
    return new AlignSettings(t.sourceModel(), t.targetModel(), t.answerTemplate(), s);
  }

  private ObjectNode align() {
    Dataset<Row> selected = cellStore.read(Tables.SELECTED);
    long n = selected.count();
    Dataset<Row> wide = AlignStage.align(selected, alignSettings(fitted(chosenSelect(), n)))
        .cache();
    ObjectNode st = JSON.createObjectNode();
    try {
      cellStore.commitPartition(Tables.FAILED, "align", AlignStage.failed(wide),
          RecipeRunner.PENDING);
      Dataset<Row> failed = cellStore.read(Tables.FAILED).where("stage = 'align'");
      FailedRows.check("align", failed, n, t.maxFailedFraction(), cellStore.root());
      st.put("failed", failed.count());
      cellStore.commit(Tables.TRAINING, AlignStage.training(wide), RecipeRunner.PENDING);
    } finally {
      wide.unpersist();
    }
    st.put("same_tokenizer", AlignStage.sameTokenizer(t.sourceModel(), t.targetModel()));
    return st;
  }

  private ObjectNode train(String key) {
    List<TrainingExample> data = TrainStage.examples(cellStore.read(Tables.TRAINING));
    return targetWork().train(cellStore, key, data);
  }

  /**
   * The target side (training with the chosen learning rate, evaluation) as serializable work;
   * built once the stages before {@code train} are complete (it reads the tuning result).
   */
  public TargetWork targetWork() {
    boolean trains = m.evaluateOnly().isEmpty() && m.transfer().isEmpty()
        && !m.modelSide().enabled();
    TrainSettings ts = trains ? trainSettings().withLearningRate(choice().learningRate())
        : trainSettings();
    return new TargetWork(task.name(), split.test(), task.answerSet(), t.targetModel(),
        t.sourceModel(), t.sourceAdapter(), t.device(), m.name(), ts, exp.evaluation(),
        fullReport, settings.render());
  }

  /**
   * A training-free transfer of the source adapter to the target (no pool, no training): the
   * adapter and its per-module report. When no module passes, the adapter directory holds the
   * report alone and the target is evaluated as it is.
   */
  private ObjectNode transfer() {
    var ts = new org.loratransplant.transfer.TransferSettings(
        org.loratransplant.transfer.Method.parse(m.transfer()),
        exp.raw().getInt("transfer.rank"), exp.raw().getDouble("transfer.similarity-threshold"),
        exp.seed());
    var r = org.loratransplant.transfer.Transfer.run(ts, ModelDirs.local(t.sourceModel()),
        ModelDirs.local(t.sourceAdapter()), ModelDirs.local(t.targetModel()));
    try {
      Path local = Files.createTempDirectory("lt-transfer-").resolve(ADAPTER);
      if (r.transferred() > 0) {
        r.write(local);
      } else {
        Files.createDirectories(local);
        Files.writeString(local.resolve(org.loratransplant.transfer.TransferReport.JSON_FILE),
            org.loratransplant.transfer.TransferReport.json(r));
        Files.writeString(local.resolve(org.loratransplant.transfer.TransferReport
            .MARKDOWN_FILE), org.loratransplant.transfer.TransferReport.markdown(r));
      }
      cellStore.commitLocalDirectory(local, ADAPTER, RecipeRunner.PENDING);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    ObjectNode st = JSON.createObjectNode();
    st.put("modules", r.modules().size());
    st.put("transferred", r.transferred());
    return st;
  }

  // ---- model-side transfers ------------------------------------------------------------------

  /** What a model-side row's adapter depends on. */
  private String modelSideKey() {
    MethodSettings.ModelSide side = m.modelSide();
    Object data = Keys.of(exp.taskFile().toAbsolutePath().normalize(), exp.testFraction(),
        exp.splitSeed());
    Object own = switch (side.kind()) {
      case "inherit" -> List.of();
      case "ca-lora" -> List.of(exp.raw().getConfig("calora"), exp.raw().getConfig("train"),
          exp.seed(), side.distil(), data, exp.answerPrompt().toString());
      default -> List.of(exp.raw().getConfig("migrate"), exp.raw().getConfig("train"),
          exp.seed(), data, exp.answerPrompt().toString());
    };
    return Keys.of("model-side", side.kind(), side.compressed() ? side.compress() : "",
        t.sourceModel(), sourceFingerprint(), t.targetModel(), own);
  }

  /**
   * The source expert's adapter moved onto the row's model (t.targetModel(): a compressed copy
   * of the source base, or the source base itself), by CA-LoRA's and layer migration's own code.
   */
  private ObjectNode modelSide() {
    Path sourceAdapter = ModelDirs.local(t.sourceAdapter());
    ObjectNode st = JSON.createObjectNode();
    try {
      Path local = Files.createTempDirectory("lt-model-side-").resolve(ADAPTER);
      switch (m.modelSide().kind()) {
        case "inherit" -> {
          // The source LoRA as it is (CA-LoRA's "inherited" baseline): its PEFT files only.
          Files.createDirectories(local);
          for (String f : List.of(PeftFormat.CONFIG_FILE, PeftFormat.WEIGHTS_FILE)) {
            Files.copy(sourceAdapter.resolve(f), local.resolve(f));
          }
        }
        case "ca-lora" -> caLora(sourceAdapter, local, st);
        default -> migrateTopLayer(sourceAdapter, local, st);
      }
      cellStore.commitLocalDirectory(local, ADAPTER, RecipeRunner.PENDING);
      PeftFormat.deleteRecursively(local.getParent());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return st;
  }

  /** CA-LoRA: inherit onto the compressed base, add recovery, train (distilled or CE only). */
  private void caLora(Path sourceAdapter, Path out, ObjectNode st) {
    var cs = org.loratransplant.calora.CaLoraJob.settings(exp);
    boolean distil = m.modelSide().distil();
    try (LanguageModel lm = LanguageModel.load(ModelDirs.local(t.targetModel()),
        Devices.choose(t.device()));
        LanguageModel full = distil ? LanguageModel.load(ModelDirs.local(t.sourceModel()),
            Devices.choose(t.device())) : null;
        LoraAdapter expert = distil ? PeftFormat.read(sourceAdapter, full.config(),
            full.model().manager()) : null) {
      List<TrainingExample> data = org.loratransplant.task.TaskPrompts.supervised(split.train(),
          exp.answerPrompt(), lm.tokenizer(), lm.eosIds()[0],
          exp.raw().getBoolean("train.prompt-loss"));
      var teacher = distil ? new org.loratransplant.train.objective.ModelTeacher(full.model(),
          expert) : null;
      var trained = org.loratransplant.calora.CaLora.train(lm, sourceAdapter, teacher, data, cs,
          exp.seed());
      try (var a = trained.adapter()) {
        a.write(out);
        st.put("parameters", a.parameterCount());
        st.put("recovery_parameters", a.recovery().parameterCount());
      }
      List<Double> losses = trained.training().losses();
      st.put("examples", data.size());
      st.put("first_loss", losses.get(0));
      st.put("final_loss", losses.get(losses.size() - 1));
      st.put("fit_seconds", trained.seconds());
    }
  }

  /**
   * Layer migration on the comparison's expert, which adapts every layer: its top layer's LoRA
   * distilled into the layer below (LayerMigration.topLayer), the result without a LoRA on the
   * top layer.
   */
  private void migrateTopLayer(Path sourceAdapter, Path out, ObjectNode st) {
    var ms = org.loratransplant.migrate.MigrationJob.settings(exp);
    try (LanguageModel lm = LanguageModel.load(ModelDirs.local(t.targetModel()),
        Devices.choose(t.device()));
        LoraAdapter expert = PeftFormat.read(sourceAdapter, lm.config(),
            lm.model().manager())) {
      List<TrainingExample> data = org.loratransplant.migrate.MigrationJob.data(lm, expert, exp,
          split);
      var step = org.loratransplant.migrate.LayerMigration.topLayer(lm, expert, data, ms);
      try (LoraAdapter student = step.student()) {
        PeftFormat.write(student, out);
        st.put("parameters", student.parameterCount());
      }
      List<Double> losses = step.training().losses();
      st.put("from_layer", step.from());
      st.put("to_layer", step.to());
      st.put("examples", data.size());
      st.put("first_loss", losses.get(0));
      st.put("final_loss", losses.get(losses.size() - 1));
      st.put("fit_seconds", step.seconds());
    }
  }

  private ObjectNode evaluate() {
    return targetWork().evaluate(cellStore);
  }

  private ObjectNode evaluateReference() {
    return targetWork().evaluateReference(cellStore, m.evaluateOnly());
  }

  /** The stored evaluation table of a complete run, or null. */
  public String evaluationMarkdown() {
    return cellStore.readText(EVALUATION + "/evaluation.md");
  }

  /** The stored evaluation (with per-example rows) of a complete run, or null. */
  public JsonNode evaluationJson() {
    String text = cellStore.readText(EVALUATION + "/evaluation.json");
    try {
      return text == null ? null : JSON.readTree(text);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  // ---- tuning on a validation split --------------------------------------------------------

  /**
   * Tries every (k %, learning rate) candidate: select and align with that k, train a fresh
   * target LoRA, evaluate it on a validation split carved from the task's training data (never
   * the test split); the best by exact match, then choice accuracy, wins; ties go to the larger k
   * (closer to training on every token), then to the settings' own learning rate.
   */
  private Stage tuneStage(String upstream) {
    MethodSettings.Tune tune = m.tune();
    List<Double> ks = new ArrayList<>(tune.kPercent());
    if (!ks.contains(100.0)) {
      ks.add(100.0);
    }
    List<Double> lrs = tune.learningRates().isEmpty()
        ? List.of(exp.trainer().learningRate()) : tune.learningRates();
    List<Integer> ms = tune.samples().isEmpty() ? List.of(t.samples()) : tune.samples();
    // M candidates enter the key only when given (keys of runs before they existed hold).
    Object mKey = tune.samples().isEmpty() ? lrs : List.of(ms, lrs);
    String key = withAdapter(Keys.of("tune", upstream, selectSettings(), t.targetModel(), ks,
        mKey, tune.validationFraction(), exp.raw().getConfig("lora"),
        exp.raw().getConfig("train"), exp.raw().getConfig("eval"), exp.seed(), m.objective(),
        m.kdWeight(), m.kdTemperature()));
    return Stage.of("tune", List.of(poolStore.path(Tables.SCORED_SAMPLES),
        exp.taskFile().toString()), cellStore, List.of(TUNING), key, () -> tune(ks, ms, lrs));
  }

  /** The validation split: a seeded part of the training split. */
  List<TaskExample> validation() {
    Split v = Split.of(new Task(task.name() + "-train", split.train()),
        m.tune().validationFraction(), exp.splitSeed() + 1);
    return v.test();
  }

  /** One tried candidate and its validation figures. */
  record Trial(double kPercent, int samples, double learningRate, double exactMatch,
      double choiceAccuracy, double finalLoss) {
    /** Exact match first; choice accuracy breaks ties. */
    double score() {
      return exactMatch + 1e-3 * choiceAccuracy;
    }
  }

  /**
   * The best trial: highest score; ties go to the larger k (closer to training on every
   * token), then the larger M, then the settings' own learning rate.
   */
  static Trial best(List<Trial> trials, double ownLearningRate) {
    Trial best = null;
    for (Trial c : trials) {
      if (best == null || c.score() > best.score() + 1e-12) {
        best = c;
        continue;
      }
      if (Math.abs(c.score() - best.score()) > 1e-12) {
        continue;
      }
      boolean better = c.kPercent() > best.kPercent()
          || (c.kPercent() == best.kPercent() && c.samples() > best.samples())
          || (c.kPercent() == best.kPercent() && c.samples() == best.samples()
          && c.learningRate() == ownLearningRate && best.learningRate() != ownLearningRate);
      if (better) {
        best = c;
      }
    }
    return best;
  }

  private ObjectNode tune(List<Double> ks, List<Integer> ms, List<Double> lrs) {
    Dataset<Row> scored = scoredPool().cache();
    long pool = scored.count();
    List<TaskExample> val = validation();
    List<Trial> trials = new ArrayList<>();
    Map<List<Object>, Trial> seen = new java.util.HashMap<>();
    try (LanguageModel target = LanguageModel.load(ModelDirs.local(t.targetModel()),
        Devices.choose(t.device()))) {
      for (int m : ms) {
        for (double k : ks) {
          SelectSettings s = fitted(selectSettings().with(k, (int) Math.min(m, pool)), pool);
          // A sample that cannot be aligned is left out here too (align records it).
          List<TrainingExample> data = TrainStage.examples(AlignStage.training(AlignStage.align(
              SelectStage.select(scored, s, pool), alignSettings(s))));
          for (double lr : lrs) {
            // Candidates whose masks come out the same (every k keeps a one-word answer whole)
            // train the same adapter: train it once.
            Trial same = seen.get(List.of(dataKey(data), lr));
            Trial c = same != null ? new Trial(s.kPercent(), s.samples(), lr, same.exactMatch(),
                same.choiceAccuracy(), same.finalLoss()) : trial(target, data, s, lr, val);
            if (same != null) {
              LOG.info(String.format("tune: M=%d k=%.0f%% lr=%.1e trains on the same tokens as "
                  + "an earlier candidate: its validation figures are reused", s.samples(),
                  s.kPercent(), lr));
            }
            seen.put(List.of(dataKey(data), lr), c);
            trials.add(c);
          }
        }
      }
    } finally {
      scored.unpersist();
    }
    Trial chosen = best(trials, exp.trainer().learningRate());
    ObjectNode out = JSON.createObjectNode();
    ArrayNode cands = out.putArray("candidates");
    for (Trial c : trials) {
      cands.add(trialJson(c));
    }
    out.set("chosen", trialJson(chosen));
    out.put("validation_examples", val.size());
    LOG.info("tune: chose M={} k={}% lr={}", chosen.samples(), chosen.kPercent(),
        chosen.learningRate());
    try {
      Path local = Files.createTempDirectory("lt-tune-").resolve(TUNING);
      Files.createDirectories(local);
      Files.writeString(local.resolve("tuning.json"), out.toPrettyString());
      cellStore.commitLocalDirectory(local, TUNING, RecipeRunner.PENDING);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return out;
  }

  /** A hash of training examples: ids and weights, in order. */
  private static String dataKey(List<TrainingExample> data) {
    StringBuilder sb = new StringBuilder();
    for (TrainingExample ex : data) {
      sb.append(java.util.Arrays.toString(ex.prompt())).append(java.util.Arrays.toString(
          ex.response())).append(java.util.Arrays.toString(ex.weights())).append(';');
    }
    return Keys.of(sb);
  }

  /** Trains a fresh adapter on one candidate's data and scores it on the validation split. */
  private Trial trial(LanguageModel target, List<TrainingExample> data, SelectSettings s,
      double lr, List<TaskExample> val) {
    try {
      Path dir = Files.createTempDirectory("lt-tune-").resolve(ADAPTER);
      TrainStage.Result r = TrainStage.train(data, target, trainSettings().withLearningRate(lr),
          dir, null, null, Map.of());
      Evaluator.Report rep;
      try (AdapterDir a = AdapterDir.read(dir, target)) {
        rep = new Evaluator(exp.evaluation()).evaluate("tune", target, a.adapter(), val,
            task.answerSet());
      }
      PeftFormat.deleteRecursively(dir.getParent());
      Trial c = new Trial(s.kPercent(), s.samples(), lr, rep.exactMatch().value(),
          rep.choiceAccuracy() == null ? 0 : rep.choiceAccuracy().value(),
          r.training().losses().get(r.training().losses().size() - 1));
      LOG.info(String.format("tune: M=%d k=%.0f%% lr=%.1e -> validation exact match %.3f, "
          + "choice accuracy %.3f (n=%d)", c.samples(), c.kPercent(), lr, c.exactMatch(),
          c.choiceAccuracy(), val.size()));
      return c;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static ObjectNode trialJson(Trial c) {
    ObjectNode o = JSON.createObjectNode();
    o.put("k_percent", c.kPercent());
    o.put("samples", c.samples());
    o.put("learning_rate", c.learningRate());
    o.put("validation_exact_match", c.exactMatch());
    o.put("validation_choice_accuracy", c.choiceAccuracy());
    o.put("final_loss", c.finalLoss());
    return o;
  }

  // ---- TransLoRA's discriminator ----------------------------------------------------------

  /**
   * Trains the discriminator on the source side (the task's real training examples against rows
   * the bare source base writes) and keeps the pool samples it believes real. Stored with the
   * pool (it depends only on the pool, the source and the task).
   */
  private Stage discriminateStage(String scoreKey) {
    org.loratransplant.discriminate.DiscriminatorSettings ds = discriminatorSettings();
    int negatives = exp.raw().getInt("translora.discriminator.negatives");
    String key = Keys.of("discriminate", scoreKey, exp.raw().getConfig("translora"), ds,
        exp.taskFile().toAbsolutePath().normalize(), exp.testFraction(), exp.splitSeed());
    return Stage.of("discriminate", List.of(poolStore.path(Tables.SCORED_SAMPLES),
        exp.taskFile().toString(), t.sourceModel()), poolStore, List.of(DISCRIMINATOR), key,
        () -> discriminate(ds, negatives));
  }

  private org.loratransplant.discriminate.DiscriminatorSettings discriminatorSettings() {
    return org.loratransplant.discriminate.DiscriminatorSettings.from(
        settings.config().atPath("lt"));
  }

  private ObjectNode discriminate(org.loratransplant.discriminate.DiscriminatorSettings ds,
      int negatives) {
    List<org.loratransplant.discriminate.Labelled> pool = new ArrayList<>();
    for (Row r : poolStore.read(Tables.SCORED_SAMPLES).select("sample_id", "query", "response")
        .orderBy("sample_id").collectAsList()) {
      pool.add(new org.loratransplant.discriminate.Labelled(r.getLong(0), r.getString(1),
          r.getString(2)));
    }
    ObjectNode st = JSON.createObjectNode();
    try (LanguageModel base = LanguageModel.load(ModelDirs.local(t.sourceModel()),
        Devices.choose(t.device()))) {
      var real = org.loratransplant.discriminate.Labelled.fromTask(split.train());
      String qp = org.loratransplant.discriminate.SyntheticRows.queryPrompt(
          split.seedExamples(t.seedExamples()), t.exampleTemplate(), t.queryTemplate());
      var synthetic = org.loratransplant.discriminate.SyntheticRows.generate(base, null, qp,
          new org.loratransplant.task.PromptTemplate("answer", t.answerTemplate()),
          new org.loratransplant.discriminate.SyntheticRows.Settings(negatives, 1_000_000_000L,
              t.maxQueryTokens(), t.maxResponseTokens(), t.temperature(), t.topP(),
              t.generateBatch(), ds.seed()));
      List<org.loratransplant.discriminate.Scored> kept;
      try (var d = org.loratransplant.discriminate.Discriminator.fit(base, real, synthetic, ds)) {
        kept = d.filter(pool);
        st.put("final_loss", d.losses().isEmpty() ? 0 : d.losses().get(d.losses().size() - 1));
      }
      ObjectNode out = JSON.createObjectNode();
      ArrayNode ids = out.putArray("kept_sample_ids");
      kept.forEach(k -> ids.add(k.row().id()));
      out.put("pool", pool.size());
      out.put("real_examples", real.size());
      out.put("synthetic_examples", synthetic.size());
      Path local = Files.createTempDirectory("lt-disc-").resolve(DISCRIMINATOR);
      Files.createDirectories(local);
      Files.writeString(local.resolve("kept.json"), out.toPrettyString());
      poolStore.commitLocalDirectory(local, DISCRIMINATOR, RecipeRunner.PENDING);
      st.put("pool", pool.size());
      st.put("kept", kept.size());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return st;
  }

  // ---- inputs -------------------------------------------------------------------------------

  /** A hash of the source adapter's weights: the pool depends on them, not on its path. */
  String sourceFingerprint() {
    try {
      MessageDigest md = MessageDigest.getInstance("SHA-256");
      md.update(Files.readAllBytes(ModelDirs.local(t.sourceAdapter())
          .resolve(PeftFormat.WEIGHTS_FILE)));
      return HexFormat.of().formatHex(md.digest()).substring(0, 16);
    } catch (Exception e) {
      throw new IllegalStateException("cannot read the source adapter " + t.sourceAdapter()
          + ": " + e.getMessage(), e);
    }
  }

  /** The source expert's spec. */
  ModelSpec expert() {
    return t.expert();
  }
}
