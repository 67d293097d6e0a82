package org.loratransplant.recipes;

import com.fasterxml.jackson.databind.JsonNode;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.loratransplant.config.Experiment;
import org.loratransplant.config.Settings;
import org.loratransplant.pipeline.Keys;
import org.loratransplant.pipeline.ModelDirs;
import org.loratransplant.pipeline.RecipeRunner;
import org.loratransplant.pipeline.StageStore;
import org.loratransplant.report.ItemScores;
import org.loratransplant.report.ResultRow;
import org.loratransplant.table.Tables;
import org.loratransplant.task.TaskFiles;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code jobs/lt compare}: methods x tasks x targets x seeds in one job. Each (expert, task) pool
 * is generated and scored once and shared by every method and target whose pool settings agree
 * (TransLoRA's target-written queries make a pool per target). Each cell is a {@link Transplant}
 * in its own directory, so the job resumes per cell. Vanilla is evaluated once per (task,
 * target) and the expert once per task: neither depends on the seed.
 *
 * <p>Model-side transfers (lt.method.model-side: CA-LoRA, its inherited baseline, layer
 * migration) move the expert's adapter onto a model derived from the source base; they get a
 * target column of their own, named after that model ({@code stories260K-nf4}; the source base's
 * name for layer migration), with a vanilla row of that model when vanilla is compared. Rows with
 * {@code compress-target} (QLoRA) run on a compressed copy of the target in the target's column.
 * Compressed copies are made once, in {@code models/}.
 *
 * <p>Layout under {@code lt.compare.out}: {@code <task>/pool-<key>/} (the pool's tables),
 * {@code <task>/<target>/<method>/seed-<s>/} (a cell), {@code models/<model>-<level>/}, and at
 * the top {@code results} (Parquet), {@code results.json}, {@code report.md} and
 * {@code plot.png}.
 */
public final class CompareJob {
  private static final Logger LOG = LoggerFactory.getLogger(CompareJob.class);

  private final SparkSession spark;
  private final Settings settings;
  private final boolean force;
  private final CompareSettings c;
  private final StageStore store;

  /** Validates the comparison and every cell's settings before any work. */
  public CompareJob(SparkSession spark, Settings settings, boolean force) {
    this.spark = spark;
    this.settings = settings;
    this.force = force;
    this.c = CompareSettings.from(new Experiment(settings));
    this.store = new StageStore(spark, c.out());
    for (Cell cell : cells()) {
      try {
        Experiment exp = new Experiment(cell.settings());
        Transplant.checkModelSide(exp, MethodSettings.from(exp));
        TitokSettings.from(exp);
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException("lt.methods." + cell.method() + ": "
            + e.getMessage(), e);
      }
    }
  }

  public StageStore store() {
    return store;
  }

  public CompareSettings compare() {
    return c;
  }

  /**
   * One (task, target, method, seed): its settings and where its outputs go. {@code target} is
   * the report's column; {@code derived}, when not null, is the model the cell runs on and must
   * be made first (a compressed copy).
   */
  record Cell(String task, String target, String method, int seed, Settings settings,
      String dir, Derived derived) {}

  /** A compressed copy of {@code from} that some cells run on, made once per comparison. */
  record Derived(String from, org.loratransplant.calora.CompressionLevel level, Path dir) {}

  /** Every cell in report order: task, target, method, seed; model-side columns last. */
  List<Cell> cells() {
    List<Cell> out = new ArrayList<>();
    for (String taskFile : c.tasks()) {
      String task = TaskFiles.load(Path.of(taskFile)).name();
      Settings base = taskSettings(taskFile, task);
      String source = base.config().getString("titok.source-model");
      // Model-side rows: their column (a model derived from the source base), its model.
      Map<String, Derived> sideColumns = new LinkedHashMap<>();
      Map<String, List<String>> sideMethods = new LinkedHashMap<>();
      for (String target : c.targets()) {
        String targetName = Path.of(target).getFileName().toString();
        for (String method : c.methods()) {
          MethodSettings ms = methodOf(base, method, target);
          if (ms.modelSide().enabled()) {
            Derived d = ms.modelSide().compressed() ? derived(source, ms.modelSide().compress())
                : null;
            String column = d == null ? Path.of(source).getFileName().toString()
                : d.dir().getFileName().toString();
            sideColumns.putIfAbsent(column, d);
            List<String> ml = sideMethods.computeIfAbsent(column, k -> new ArrayList<>());
            if (!ml.contains(method)) {
              ml.add(method);
            }
            continue;
          }
          // QLoRA-style rows train and evaluate on a compressed copy of the target: same column.
          Derived d = ms.compressTarget().isEmpty() ? null : derived(target, ms.compressTarget());
          addCells(out, base, task, targetName, d == null ? target : d.dir().toString(), method,
              ms, d);
        }
      }
      for (var col : sideColumns.entrySet()) {
        Derived d = col.getValue();
        String model = d == null ? source : d.dir().toString();
        if (c.methods().contains("vanilla")) {
          addCells(out, base, task, col.getKey(), model, "vanilla",
              methodOf(base, "vanilla", model), d);
        }
        for (String method : sideMethods.get(col.getKey())) {
          addCells(out, base, task, col.getKey(), model, method, methodOf(base, method, model),
              d);
        }
      }
    }
    return out;
  }

  /** The cells of one method in one column: one, or one per seed when it trains. */
  private void addCells(List<Cell> out, Settings base, String task, String column, String model,
      String method, MethodSettings ms, Derived derived) {
    String only = ms.evaluateOnly();
    // References, training-free transfers and inherited adapters do not depend on the seed.
    List<Integer> seeds = ms.seeded() ? c.seeds() : List.of(c.seeds().get(0));
    for (int seed : seeds) {
      Settings s = cellSettings(base, method, model, seed);
      String dir = only.equals("expert") ? task + "/expert"
          : only.equals("vanilla") ? task + "/" + column + "/vanilla"
          : !ms.seeded() ? task + "/" + column + "/" + method
          : task + "/" + column + "/" + method + "/seed-" + seed;
      out.add(new Cell(task, column, method, seed, s, dir, derived));
    }
  }

  private Settings cellSettings(Settings base, String method, String model, int seed) {
    Map<String, Object> over = new LinkedHashMap<>();
    over.put("titok.target-model", model);
    over.put("seed", seed);
    over.put("method.name", method);
    return base.overlay(ConfigFactory.parseMap(over).withFallback(c.preset(method)),
        method + " on " + Path.of(model).getFileName() + " seed " + seed);
  }

  /** A preset's method settings; a bad value is refused naming the preset. */
  private MethodSettings methodOf(Settings base, String method, String model) {
    try {
      return MethodSettings.from(new Experiment(cellSettings(base, method, model,
          c.seeds().get(0))));
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("lt.methods." + method + ": " + e.getMessage(), e);
    }
  }

  /** The compressed copy of {@code model} a row needs, in the run directory's models/. */
  private Derived derived(String model, String spec) {
    if (ModelDirs.isRemote(c.out())) {
      throw new IllegalArgumentException("lt.compare.out = " + c.out() + ": rows on compressed "
          + "models (compress-target, model-side) need a local run directory");
    }
    var level = org.loratransplant.calora.CompressionLevel.parse(spec);
    // Absolute, like every model path a cell's settings carry (TitokSettings.absolute).
    return new Derived(model, level, Path.of(c.out(), "models",
        Path.of(model).getFileName() + "-" + level.id()).toAbsolutePath().normalize());
  }

  /** Makes a compressed copy unless a previous run made it (the copy appears whole or not). */
  private static void ensure(Derived d) {
    if (Files.isRegularFile(d.dir().resolve(org.loratransplant.compress.Compressor.REPORT_FILE))) {
      return;
    }
    LOG.info("compare: compressing {} ({}) -> {}", d.from(), d.level().id(), d.dir());
    try {
      Files.createDirectories(d.dir().getParent());
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
    org.loratransplant.compress.Compressor.compress(ModelDirs.local(d.from()), d.dir(),
        d.level().settings());
  }

  /** The experiment's settings for one task: its file, its expert, its own overrides. */
  private Settings taskSettings(String taskFile, String task) {
    Map<String, Object> over = new LinkedHashMap<>();
    over.put("task.file", taskFile);
    over.put("titok.source-adapter", c.expertsDir() + "/"
        + Path.of(settings.config().getString("titok.source-model")).getFileName() + "-" + task);
    Config perTask = c.taskOverrides(task);
    return settings.overlay(ConfigFactory.parseMap(over).withFallback(perTask), task);
  }

  /** Runs every cell not yet complete, then writes the results and the report. */
  public String run() {
    try (org.loratransplant.pipeline.RunLock lock =
        org.loratransplant.pipeline.RunLock.acquire(spark, c.out())) {
      return runLocked();
    }
  }

  private String runLocked() {
    List<Cell> cells = cells();
    RecipeRunner runner = new RecipeRunner(force);
    long t0 = System.nanoTime();
    int done = 0;
    List<ResultRow> results = new ArrayList<>();
    List<ItemScores> items = new ArrayList<>();
    Map<String, Boolean> experts = new LinkedHashMap<>();
    for (Cell cell : cells) {
      Experiment exp = new Experiment(cell.settings());
      TitokSettings ts = TitokSettings.from(exp);
      if (cell.derived() != null) {
        ensure(cell.derived());
      }
      if (experts.putIfAbsent(cell.task(), true) == null) {
        Experts.checkModelDirs(ts);
        Experts.ensure(ts, exp.taskFile());
      }
      StageStore cellStore = store.child(cell.dir());
      // The pool directory is named by the pool's own key: cells that agree on it share it.
      StageStore poolStore = store.child(cell.task() + "/pool-" + Keys.of(Transplant.pool(ts,
          MethodSettings.from(exp), c.poolSeed())).substring(0, 10));
      Transplant t = new Transplant(spark, cell.settings(), poolStore, cellStore, c.poolSeed(),
          false);
      runner.run(t.recipe(), null);
      JsonNode eval = t.evaluationJson();
      CellResult r = CellResult.of(cell, Path.of(ts.sourceModel()).getFileName().toString(),
          eval);
      items.addAll(r.items());
      results.addAll(r.rows());
      done++;
      double secs = (System.nanoTime() - t0) / 1e9;
      LOG.info(String.format("compare: %d/%d cells done (%s, %s, %s, seed %d), %.0f s, ETA %.0f s",
          done, cells.size(), cell.task(), cell.target(), cell.method(), cell.seed(), secs,
          secs / done * (cells.size() - done)));
    }
    List<Row> table = results.stream().map(r -> RowFactory.create(r.task(), r.source(),
        r.target(), r.method(), r.seed(), r.metric(), r.value(), r.ciLow(), r.ciHigh(), r.n()))
        .toList();
    store.commit(Tables.RESULTS, spark.createDataFrame(table, Tables.RESULTS.schema()),
        RecipeRunner.PENDING);
    store.mark(Tables.RESULTS.tableName(), Keys.of(results));
    return CompareReports.write(store, c, results, items);
  }

  /** The figures of one cell: one results row per metric, and the per-item outcomes. */
  record CellResult(Cell cell, List<ResultRow> rows, List<ItemScores> items) {
    static CellResult of(Cell cell, String source, JsonNode eval) {
      if (eval == null) {
        throw new IllegalStateException("cell " + cell.dir() + " has no evaluation");
      }
      JsonNode sys = eval.get("systems").get(0);
      JsonNode ex = sys.get("examples");
      int n = ex.size();
      Map<String, double[]> per = new LinkedHashMap<>();
      per.put(ResultRow.EXACT_MATCH, new double[n]);
      if (sys.has("choice_accuracy")) {
        per.put(ResultRow.CHOICE_ACCURACY, new double[n]);
      }
      per.put(ResultRow.ROUGE1, new double[n]);
      per.put(ResultRow.ROUGE_L, new double[n]);
      for (int i = 0; i < n; i++) {
        JsonNode e = ex.get(i);
        per.get(ResultRow.EXACT_MATCH)[i] = e.path("exact").asBoolean() ? 1 : 0;
        if (per.containsKey(ResultRow.CHOICE_ACCURACY)) {
          per.get(ResultRow.CHOICE_ACCURACY)[i] = e.path("choice").asText()
              .equals(e.path("target").asText().strip()) ? 1 : 0;
        }
        per.get(ResultRow.ROUGE1)[i] = e.path("rouge1").asDouble();
        per.get(ResultRow.ROUGE_L)[i] = e.path("rougeL").asDouble();
      }
      Map<String, String> jsonName = Map.of(ResultRow.EXACT_MATCH, "exact_match",
          ResultRow.CHOICE_ACCURACY, "choice_accuracy", ResultRow.ROUGE1, "rouge1_f",
          ResultRow.ROUGE_L, "rougeL_f");
      List<ResultRow> rows = new ArrayList<>();
      List<ItemScores> items = new ArrayList<>();
      for (var m : per.entrySet()) {
        JsonNode v = sys.get(jsonName.get(m.getKey()));
        rows.add(new ResultRow(cell.task(), source, cell.target(), cell.method(), cell.seed(),
            m.getKey(), v.get("value").asDouble(), v.get("ci95_lo").asDouble(),
            v.get("ci95_hi").asDouble(), v.get("n").asInt()));
        items.add(new ItemScores(cell.task(), cell.target(), cell.method(), cell.seed(),
            m.getKey(), m.getValue()));
      }
      return new CellResult(cell, rows, items);
    }
  }

  /** The {@code lt.compare} section. */
  public record CompareSettings(String out, List<String> tasks, List<String> targets,
      List<Integer> seeds, List<String> methods, String expertsDir, long poolSeed,
      Config presets, Config taskOverrides, List<String[]> pairs) {

    static CompareSettings from(Experiment exp) {
      Config k = exp.section("compare");
      try {
        List<String> methods = k.getStringList("methods");
        Config presets = exp.section("methods");
        for (String m : methods) {
          if (!presets.hasPath(quote(m))) {
            throw new IllegalArgumentException("method '" + m + "' has no preset in lt.methods ("
                + presets.root().keySet() + ")");
          }
        }
        List<String[]> pairs = new ArrayList<>();
        for (String p : k.getStringList("paired")) {
          String[] ab = p.split(":");
          if (ab.length != 2 || !methods.contains(ab[0]) || !methods.contains(ab[1])) {
            throw new IllegalArgumentException("paired: '" + p + "' is not method:method of "
                + methods);
          }
          pairs.add(ab);
        }
        if (k.getStringList("tasks").isEmpty() || k.getStringList("targets").isEmpty()
            || k.getIntList("seeds").isEmpty() || methods.isEmpty()) {
          throw new IllegalArgumentException("tasks, targets, seeds and methods must not be "
              + "empty");
        }
        return new CompareSettings(k.getString("out"), k.getStringList("tasks"),
            k.getStringList("targets"), k.getIntList("seeds"), methods,
            k.getString("experts-dir"), exp.seed(), presets, k.getConfig("task-overrides"),
            pairs);
      } catch (ConfigException e) {
        throw new IllegalArgumentException("lt.compare: " + e.getMessage(), e);
      }
    }

    Config preset(String method) {
      return presets.getConfig(quote(method));
    }

    Config taskOverrides(String task) {
      return taskOverrides.hasPath(quote(task)) ? taskOverrides.getConfig(quote(task))
          : ConfigFactory.empty();
    }

    private static String quote(String key) {
      return "\"" + key + "\"";
    }
  }
}
