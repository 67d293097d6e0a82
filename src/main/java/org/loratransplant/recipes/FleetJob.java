package org.loratransplant.recipes;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.typesafe.config.ConfigException;
import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.loratransplant.config.Experiment;
import org.loratransplant.config.Settings;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.model.ModelConfig;
import org.loratransplant.pipeline.Keys;
import org.loratransplant.pipeline.ModelDirs;
import org.loratransplant.pipeline.Recipe;
import org.loratransplant.pipeline.RecipeRunner;
import org.loratransplant.pipeline.RunLock;
import org.loratransplant.pipeline.Stage;
import org.loratransplant.pipeline.StageStore;
import org.loratransplant.pipeline.train.TrainStage;
import org.loratransplant.report.PairedTests;
import org.loratransplant.table.Tables;
import org.loratransplant.task.TaskFiles;
import org.loratransplant.train.TrainingExample;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code jobs/lt fleet}: every adapter of a {@link FleetManifest} transplanted to one new target
 * base in one job, each with the {@link Transplant} recipe in its own run directory
 * ({@code <out>/<name>/}), so the job resumes per adapter.
 *
 * <p>Three phases: a preflight of every adapter (its folder, weights, source base and task
 * file); the driver's stages of each recipe in turn (generate and score fan out over executors as
 * in {@code titok}; tune, select and align as there); then one Spark job with a task per adapter
 * that runs that adapter's {@code train} and {@code evaluate} stages ({@link TargetWork}), so the
 * target LoRAs are fitted side by side across the cluster, each task committing its outputs to
 * the adapter's store. An adapter that fails in any phase is recorded with its error and the
 * others go on. A rerun skips every complete stage (the recipe's keys), so finished adapters do
 * no work and failed ones are retried; {@code --force} redoes everything.
 *
 * <p>Outputs under {@code out}: {@code fleet_report} (Parquet, {@link Tables#FLEET_REPORT}),
 * {@code fleet_report.json} and {@code fleet_report.md}.
 */
public final class FleetJob {
  private static final Logger LOG = LoggerFactory.getLogger(FleetJob.class);
  private static final ObjectMapper JSON = new ObjectMapper();
  /** The recipe's stages that run in the adapter's Spark task; every other one on the driver. */
  static final List<String> TARGET_STAGES = List.of("train", "evaluate");
  /** Resamples of the paired bootstrap of the exact-match gain. */
  private static final int RESAMPLES = 10_000;

  /**
   * A fleet, checked without Spark: the manifest, the target, where outputs go, the job's
   * method and the failure threshold. A remote target ({@code s3a://...}) is checked here for
   * its form only, and whole when the job starts ({@link #run}), with the session's S3 settings.
   *
   * @param maxFailedFraction the job fails when every adapter fails or more than this share does
   */
  public record Plan(Settings settings, FleetManifest manifest, String target, String out,
      String method, double maxFailedFraction) {

    /**
     * Checks the conf's {@code lt.fleet}, the manifest in {@code adapters} (whole, before any
     * work), the target and the methods.
     *
     * @param target the new base: a local directory, or a remote one's URI
     * @param out the run directory, or null for {@code lt.fleet.out}
     * @param method the job's method preset, or null for {@code lt.titok.method}
     */
    public static Plan of(Settings settings, Path adapters, String target, String out,
        String method) {
      double fraction;
      String dir;
      String m;
      try {
        fraction = settings.config().getDouble("fleet.max-failed-fraction");
        dir = out != null ? out : settings.config().getString("fleet.out");
        m = method != null ? method : settings.config().getString("titok.method");
      } catch (ConfigException e) {
        throw new IllegalArgumentException("lt.fleet: " + e.getMessage(), e);
      }
      if (!(fraction >= 0 && fraction <= 1)) {
        throw new IllegalArgumentException("lt.fleet.max-failed-fraction must be in [0, 1], got "
            + fraction);
      }
      String targetDir;
      if (ModelDirs.isRemote(target)) {
        try {
          java.net.URI.create(target);
        } catch (IllegalArgumentException e) {
          throw new IllegalArgumentException("--target-model = " + target + ": not a URI ("
              + e.getMessage() + ")", e);
        }
        targetDir = target;
      } else {
        Path local = ModelDirs.local(target);
        checkModelDir(local, "--target-model");
        targetDir = local.toAbsolutePath().normalize().toString();
      }
      FleetManifest manifest = FleetManifest.load(adapters);
      manifest.checkMethods(settings.config().getConfig("methods"), m);
      // The rest of the conf, as every adapter's settings will have it (paths aside).
      Experiment exp = new Experiment(TitokJob.withMethod(settings.overlay(Map.of(
          "titok.method", m), "--method " + m)));
      TitokSettings.from(exp);
      if (!MethodSettings.from(exp).evaluateOnly().isEmpty()) {
        throw new IllegalArgumentException("lt.method.evaluate-only = " + MethodSettings.from(exp)
            .evaluateOnly() + ": a migration needs a method that makes a target adapter");
      }
      exp.trainer();
      exp.evaluation();
      return new Plan(settings, manifest, targetDir,
          TitokSettings.absolute(dir), m, fraction);
    }

    /** Whether {@code failed} of {@code total} adapters fail the job. */
    public boolean fails(int failed, int total) {
      return failed > 0 && (failed == total || failed > maxFailedFraction * total);
    }
  }

  private final SparkSession spark;
  private final Plan plan;
  private final boolean force;
  private final StageStore store;

  public FleetJob(SparkSession spark, Plan plan, boolean force) {
    this.spark = spark;
    this.plan = plan;
    this.force = force;
    this.store = new StageStore(spark, plan.out());
  }

  public StageStore store() {
    return store;
  }

  /** Outcome of the whole job. */
  public record Result(List<Row> rows, int ok, int failed, boolean fails, String markdown) {}

  /**
   * Runs every adapter, writes the report and returns it. A remote target is fetched into the
   * model cache and checked first: every adapter needs it.
   */
  public Result run() {
    if (ModelDirs.isRemote(plan.target())) {
      Path local;
      try {
        local = ModelDirs.local(plan.target());
      } catch (RuntimeException e) {
        throw new IllegalArgumentException("--target-model = " + plan.target() + ": "
            + e.getMessage(), e);
      }
      Experts.checkModelDirAt(local, "--target-model = " + plan.target() + " (fetched to "
          + local + ")");
    }
    try (RunLock lock = RunLock.acquire(spark, plan.out())) {
      return runLocked();
    }
  }

  /** One adapter's progress through the job. */
  static final class Outcome {
    final FleetManifest.Entry entry;
    String method;
    String task;
    String error;
    String executor;
    final Map<String, ObjectNode> stages = new LinkedHashMap<>();
    final List<String> ran = new ArrayList<>();
    Transplant transplant;
    Recipe recipe;

    Outcome(FleetManifest.Entry entry, String method) {
      this.entry = entry;
      this.method = method;
    }

    boolean ok() {
      return error == null;
    }

    void fail(String stage, Throwable e) {
      error = stage + ": " + describe(e);
      LOG.error("fleet: adapter {} failed in {}", entry.name(), error);
    }

    void record(String stage, ObjectNode stats) {
      stages.put(stage, stats);
      if (!stats.path("skipped").asBoolean()) {
        ran.add(stage);
      }
    }
  }

  private Result runLocked() {
    long t0 = System.nanoTime();
    List<Outcome> outcomes = new ArrayList<>();
    for (FleetManifest.Entry e : plan.manifest().entries()) {
      Outcome o = new Outcome(e, e.method().isEmpty() ? plan.method() : e.method());
      outcomes.add(o);
      try {
        preflight(o);
      } catch (RuntimeException ex) {
        o.fail("preflight", ex);
      }
    }
    long t1 = System.nanoTime();
    RecipeRunner runner = new RecipeRunner(force);
    for (Outcome o : outcomes) {
      if (o.ok()) {
        driverStages(o, runner);
      }
    }
    long t2 = System.nanoTime();
    targetStages(outcomes, runner);
    long t3 = System.nanoTime();
    Map<String, Double> phases = new LinkedHashMap<>();
    phases.put("preflight", (t1 - t0) / 1e9);
    phases.put("driver_stages", (t2 - t1) / 1e9);
    phases.put("target_tasks", (t3 - t2) / 1e9);
    return report(outcomes, phases);
  }

  // ---- preflight ----------------------------------------------------------------------------

  /** The adapter's own settings: the job's, with its source, adapter, task, target and method. */
  Settings settingsOf(Outcome o) {
    FleetManifest.Entry e = o.entry;
    Map<String, Object> over = new LinkedHashMap<>();
    over.put("titok.source-model", e.sourceModel().toString());
    over.put("titok.source-adapter", e.adapter().toString());
    over.put("titok.expert-conf", "");
    over.put("titok.target-model", plan.target());
    over.put("titok.out", store.path(e.name()));
    over.put("titok.method", o.method);
    over.put("task.file", e.task().toString());
    return TitokJob.withMethod(plan.settings().overlay(over, "fleet adapter " + e.name()));
  }

  /**
   * Checks one adapter's files before any work, each error naming the manifest field: the
   * source base, the adapter (present, readable, finite, fitting that base), the task file.
   */
  private void preflight(Outcome o) {
    FleetManifest.Entry e = o.entry;
    String at = "adapter '" + e.name() + "': ";
    try {
      checkModelDir(e.sourceModel(), "field 'source-model'");
    } catch (RuntimeException ex) {
      throw new IllegalArgumentException(at + ex.getMessage(), ex);
    }
    if (!PeftFormat.isAdapterDir(e.adapter())) {
      throw new IllegalArgumentException(at + "field 'adapter' = " + e.adapter() + ": no PEFT "
          + "adapter there (" + PeftFormat.CONFIG_FILE + " and " + PeftFormat.WEIGHTS_FILE + ")");
    }
    try (ai.djl.ndarray.NDManager m = ai.djl.ndarray.NDManager.newBaseManager(
        ai.djl.Device.cpu())) {
      PeftFormat.read(e.adapter(), ModelConfig.load(e.sourceModel()), m).close();
    } catch (RuntimeException ex) {
      throw new IllegalArgumentException(at + "field 'adapter' = " + e.adapter() + ": "
          + describe(ex), ex);
    }
    if (!Files.isRegularFile(e.task())) {
      throw new IllegalArgumentException(at + "field 'task' = " + e.task() + ": no such file");
    }
    try {
      o.task = TaskFiles.load(e.task()).name();
    } catch (RuntimeException ex) {
      throw new IllegalArgumentException(at + "field 'task' = " + e.task() + ": "
          + describe(ex), ex);
    }
    Settings s = settingsOf(o);
    Experiment exp = new Experiment(s);
    StageStore own = store.child(e.name());
    o.transplant = new Transplant(spark, s, own, own, exp.seed(), true);
    o.method = o.transplant.method().name();
    o.recipe = o.transplant.recipe();
    if (!o.recipe.stageNames().contains("evaluate")) {
      throw new IllegalArgumentException(at + "method " + o.method + " has no evaluate stage");
    }
  }

  /** A model directory with a config and a tokenizer (TiTok needs text). */
  static void checkModelDir(Path dir, String what) {
    Experts.checkModelDirAt(dir, what + " = " + dir);
  }



  // ---- the driver's stages ------------------------------------------------------------------

  /** The recipe's stages before train and evaluate, on the driver, in order. */
  private void driverStages(Outcome o, RecipeRunner runner) {
    List<Stage> stages = o.recipe.stages();
    for (int i = 0; i < stages.size(); i++) {
      Stage st = stages.get(i);
      if (TARGET_STAGES.contains(st.name())) {
        continue;
      }
      try {
        o.record(st.name(), runner.run(st, o.entry.name() + " " + o.recipe.name(), i + 1,
            stages.size()));
      } catch (RuntimeException ex) {
        o.fail(st.name(), ex);
        return;
      }
    }
  }

  // ---- train and evaluate, a Spark task per adapter -----------------------------------------

  /** What the task needs of one recipe stage: its name, inputs, outputs and key. */
  record StageShape(String name, List<String> inputs, List<String> outputs, String key,
      int index) implements Serializable {}

  /** One adapter's target side, shipped to an executor. */
  record TargetTask(String adapter, String recipe, int stageCount, List<StageShape> stages,
      StageStore store, TargetWork work, List<TrainingExample> data, boolean force)
      implements Serializable {

    TaskResult call() {
      org.apache.spark.TaskContext tc = org.apache.spark.TaskContext.get();
      String where = tc == null ? "driver" : "executor "
          + org.apache.spark.SparkEnv.get().executorId() + " (stage " + tc.stageId()
          + ", partition " + tc.partitionId() + ", attempt " + tc.attemptNumber() + ")";
      RecipeRunner runner = new RecipeRunner(force);
      Map<String, String> stats = new LinkedHashMap<>();
      String current = "";
      try {
        for (StageShape s : stages) {
          current = s.name();
          Stage.Work w = s.name().equals("train") ? () -> work.train(store, s.key(), data)
              : () -> work.evaluate(store);
          Stage st = Stage.of(s.name(), s.inputs(), store, s.outputs(), s.key(), w);
          stats.put(s.name(), runner.run(st, adapter + " " + recipe, s.index(), stageCount)
              .toString());
        }
        return new TaskResult(adapter, stats, null, where);
      } catch (Exception e) {
        LOG.error("fleet: adapter " + adapter + " failed in " + current, e);
        return new TaskResult(adapter, stats, current + ": " + describe(e), where);
      }
    }
  }

  /** What a task reports back: each stage's figures as JSON, or the error that stopped it. */
  record TaskResult(String adapter, Map<String, String> stats, String error, String executor)
      implements Serializable {}

  private void targetStages(List<Outcome> outcomes, RecipeRunner runner) {
    List<TargetTask> tasks = new ArrayList<>();
    Map<String, Outcome> byName = new LinkedHashMap<>();
    for (Outcome o : outcomes) {
      if (!o.ok()) {
        continue;
      }
      byName.put(o.entry.name(), o);
      List<Stage> all = o.recipe.stages();
      List<StageShape> shapes = new ArrayList<>();
      Stage train = null;
      boolean complete = true;
      for (int i = 0; i < all.size(); i++) {
        Stage st = all.get(i);
        if (TARGET_STAGES.contains(st.name())) {
          shapes.add(new StageShape(st.name(), st.inputs(), st.outputs(), st.key(), i + 1));
          complete &= RecipeRunner.complete(st);
          train = st.name().equals("train") ? st : train;
        }
      }
      try {
        if (complete && !force) {
          // Resumed whole: the runner returns the stored figures without running anything.
          for (StageShape s : shapes) {
            Stage st = all.get(s.index() - 1);
            o.record(s.name(), runner.run(st, o.entry.name() + " " + o.recipe.name(),
                s.index(), all.size()));
          }
          continue;
        }
        List<TrainingExample> data = train != null && (force || !RecipeRunner.complete(train))
            ? TrainStage.examples(o.transplant.cellStore().read(Tables.TRAINING)) : null;
        tasks.add(new TargetTask(o.entry.name(), o.recipe.name(), all.size(), shapes,
            o.transplant.cellStore(), o.transplant.targetWork(), data, force));
      } catch (RuntimeException ex) {
        o.fail(shapes.isEmpty() ? "train" : shapes.get(0).name(), ex);
      }
    }
    if (tasks.isEmpty()) {
      return;
    }
    LOG.info("fleet: training and evaluating {} adapters, a Spark task each", tasks.size());
    JavaSparkContext jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
    jsc.setJobDescription("fleet: train and evaluate " + tasks.size() + " adapters");
    List<TaskResult> results;
    try {
      results = jsc.parallelize(tasks, tasks.size()).map(TargetTask::call).collect();
    } finally {
      jsc.setJobDescription(null);
    }
    for (TaskResult r : results) {
      Outcome o = byName.get(r.adapter());
      o.executor = r.executor();
      r.stats().forEach((stage, text) -> {
        try {
          o.record(stage, (ObjectNode) JSON.readTree(text));
        } catch (IOException e) {
          throw new UncheckedIOException(e);
        }
      });
      if (r.error() != null) {
        o.error = r.error();
        LOG.error("fleet: adapter {} failed in {}", r.adapter(), r.error());
      }
    }
  }

  // ---- the report ---------------------------------------------------------------------------

  private Result report(List<Outcome> outcomes, Map<String, Double> phases) {
    List<Row> rows = new ArrayList<>();
    ArrayNode json = JSON.createArrayNode();
    int ok = 0;
    for (Outcome o : outcomes) {
      JsonNode eval = null;
      if (o.ok()) {
        eval = o.transplant.evaluationJson();
        if (eval == null || eval.path("systems").size() < 3) {
          o.error = "evaluate: no evaluation stored in " + o.transplant.cellStore().path(
              Transplant.EVALUATION);
        }
      }
      rows.add(row(o, o.ok() ? eval : null));
      json.add(rowJson(o, o.ok() ? eval : null));
      ok += o.ok() ? 1 : 0;
    }
    int failed = outcomes.size() - ok;
    boolean fails = plan.fails(failed, outcomes.size());
    store.commit(Tables.FLEET_REPORT, spark.createDataFrame(rows, Tables.FLEET_REPORT.schema()),
        RecipeRunner.PENDING);
    store.mark(Tables.FLEET_REPORT.tableName(), Keys.of(json));
    ObjectNode root = JSON.createObjectNode();
    root.put("target", plan.target());
    root.put("adapters", outcomes.size());
    root.put("ok", ok);
    root.put("failed", failed);
    root.put("max_failed_fraction", plan.maxFailedFraction());
    root.put("job_fails", fails);
    ObjectNode ph = root.putObject("phase_seconds");
    phases.forEach(ph::put);
    double total = phases.values().stream().mapToDouble(Double::doubleValue).sum();
    root.put("job_seconds", total);
    root.set("rows", json);
    String md = FleetReports.markdown(plan, json, ok, failed, fails, phases);
    store.writeText("fleet_report.json", root.toPrettyString());
    store.writeBytes("fleet_report.md", md.getBytes(java.nio.charset.StandardCharsets.UTF_8));
    return new Result(rows, ok, failed, fails, md);
  }

  /** The evaluation's systems: vanilla target, transplanted target, expert. */
  private static final int VANILLA = 0;
  private static final int TRANSPLANTED = 1;
  private static final int EXPERT = 2;

  private Row row(Outcome o, JsonNode eval) {
    Map<String, Double> secs = stageSeconds(o);
    JsonNode sys = eval == null ? null : eval.get("systems");
    PairedTests.Bootstrap gain = eval == null ? null : gain(sys);
    return RowFactory.create(o.entry.name(), o.task, o.entry.sourceModel().toString(),
        plan.target(), o.method, o.ok() ? "ok" : "failed", o.error,
        sys == null ? null : sys.get(TRANSPLANTED).get("n").asInt(),
        sys == null ? null : system(sys.get(VANILLA)),
        sys == null ? null : system(sys.get(TRANSPLANTED)),
        sys == null ? null : system(sys.get(EXPERT)),
        gain == null ? null : RowFactory.create(gain.meanDiff(), gain.lo(), gain.hi(),
            gain.p()),
        secs,
        secs.values().stream().mapToDouble(Double::doubleValue).sum(),
        o.ran.toArray(new String[0]), o.executor);
  }

  private static Map<String, Double> stageSeconds(Outcome o) {
    Map<String, Double> secs = new LinkedHashMap<>();
    o.stages.forEach((k, v) -> secs.put(k, v.path("seconds").asDouble()));
    return secs;
  }

  private static Row system(JsonNode s) {
    return RowFactory.create(metric(s.get("exact_match")), metric(s.get("choice_accuracy")),
        metric(s.get("rouge1_f")), metric(s.get("rougeL_f")));
  }

  private static Row metric(JsonNode m) {
    return m == null || m.isNull() ? null : RowFactory.create(m.get("value").asDouble(),
        m.get("ci95_lo").asDouble(), m.get("ci95_hi").asDouble());
  }

  /** Transplanted minus vanilla exact match, paired over the test items. */
  private static PairedTests.Bootstrap gain(JsonNode systems) {
    double[] v = exact(systems.get(VANILLA));
    double[] t = exact(systems.get(TRANSPLANTED));
    return PairedTests.bootstrap(t, v, RESAMPLES, 0);
  }

  private static double[] exact(JsonNode system) {
    JsonNode ex = system.get("examples");
    double[] out = new double[ex.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = ex.get(i).path("exact").asBoolean() ? 1 : 0;
    }
    return out;
  }

  private ObjectNode rowJson(Outcome o, JsonNode eval) {
    ObjectNode r = JSON.createObjectNode();
    r.put("adapter", o.entry.name());
    r.put("task", o.task);
    r.put("source_model", o.entry.sourceModel().toString());
    r.put("target", plan.target());
    r.put("method", o.method);
    r.put("status", o.ok() ? "ok" : "failed");
    r.put("error", o.error);
    if (eval != null) {
      JsonNode sys = eval.get("systems");
      r.put("n", sys.get(TRANSPLANTED).get("n").asInt());
      List<String> names = List.of("vanilla", "transplanted", "expert");
      for (int i : List.of(VANILLA, TRANSPLANTED, EXPERT)) {
        ObjectNode m = r.putObject(names.get(i));
        JsonNode src = sys.get(i);
        for (String k : List.of("exact_match", "choice_accuracy", "rouge1_f", "rougeL_f")) {
          if (src.has(k)) {
            m.set(k.replace("_f", ""), src.get(k));
          }
        }
      }
      PairedTests.Bootstrap g = gain(sys);
      ObjectNode gn = r.putObject("exact_match_gain");
      gn.put("value", g.meanDiff());
      gn.put("ci_low", g.lo());
      gn.put("ci_high", g.hi());
      gn.put("p", g.p());
    }
    ObjectNode secs = r.putObject("stage_seconds");
    stageSeconds(o).forEach(secs::put);
    r.put("wall_seconds", stageSeconds(o).values().stream().mapToDouble(Double::doubleValue)
        .sum());
    ArrayNode ran = r.putArray("stages_run");
    o.ran.forEach(ran::add);
    r.put("executor", o.executor);
    return r;
  }

  /** An exception's message, or its class when it has none. */
  static String describe(Throwable e) {
    String m = e.getMessage();
    return m == null || m.isBlank() ? e.toString() : m;
  }

  /** Where the report is (for the command's last line). */
  public Path reportPath() {
    return Path.of(store.path("fleet_report.md"));
  }
}
