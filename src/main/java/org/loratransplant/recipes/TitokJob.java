package org.loratransplant.recipes;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.loratransplant.config.Experiment;
import org.loratransplant.config.Settings;
import org.loratransplant.eval.Reports;
import org.loratransplant.pipeline.Recipe;
import org.loratransplant.pipeline.RecipeRunner;
import org.loratransplant.pipeline.StageStore;
import org.loratransplant.table.Tables;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code jobs/lt titok}: one transplant (the method in {@code lt.method}) with every output in one
 * run directory: the pool's tables, the selection, the training table, the adapter and the
 * evaluation of vanilla target, transplanted target and expert side by side. A rerun skips
 * complete stages and prints the stored evaluation again.
 */
public final class TitokJob {
  private static final Logger LOG = LoggerFactory.getLogger(TitokJob.class);
  private static final ObjectMapper JSON = new ObjectMapper();
  /** The stages of a transplant that trains, in order (without the optional tune). */
  public static final List<String> STAGES = List.of("generate", "score", "select", "align",
      "train", "evaluate");

  private final SparkSession spark;
  private final Settings settings;
  private final Experiment exp;
  private final TitokSettings s;
  private final boolean force;
  private final StageStore store;
  private final Transplant transplant;

  /** Validates the whole configuration and the inputs before any work. */
  public TitokJob(SparkSession spark, Settings settings, boolean force) {
    this.spark = spark;
    settings = withMethod(settings);
    this.settings = settings;
    this.exp = new Experiment(settings);
    this.s = TitokSettings.from(exp);
    this.force = force;
    this.store = new StageStore(spark, s.out());
    Experts.checkModelDirs(s);
    this.transplant = new Transplant(spark, settings, store, store, exp.seed(), true);
  }

  /**
   * The settings with {@code lt.titok.method}'s preset from {@code lt.methods} applied over
   * {@code lt.method} (its name becomes the method's name); unchanged when it is empty.
   */
  public static Settings withMethod(Settings settings) {
    String name;
    try {
      name = settings.config().getString("titok.method");
    } catch (com.typesafe.config.ConfigException e) {
      throw new IllegalArgumentException("lt.titok.method: " + e.getMessage(), e);
    }
    if (name.isEmpty()) {
      return settings;
    }
    String path = "methods.\"" + name + "\"";
    if (!settings.config().hasPath(path)) {
      throw new IllegalArgumentException("lt.titok.method = " + name + ": no such preset in "
          + "lt.methods " + settings.config().getConfig("methods").root().keySet());
    }
    return settings.overlay(com.typesafe.config.ConfigFactory.parseMap(Map.of("method.name",
        name)).withFallback(settings.config().getConfig(path)), "method " + name);
  }

  public TitokSettings titok() {
    return s;
  }

  public StageStore store() {
    return store;
  }

  /** Runs the stages in order (up to {@code lastStage} inclusive); returns the summary. */
  public ObjectNode run(String lastStage) {
    try (org.loratransplant.pipeline.RunLock lock =
        org.loratransplant.pipeline.RunLock.acquire(spark, s.out())) {
      return runLocked(lastStage);
    }
  }

  private ObjectNode runLocked(String lastStage) {
    // The expert first: the recipe's keys hash its adapter's weights.
    Experts.ensure(s, exp.taskFile());
    Recipe recipe = transplant.recipe();
    if (!recipe.stageNames().contains(lastStage)) {
      throw new IllegalArgumentException("unknown stage '" + lastStage + "' (" + recipe
          .stageNames() + ")");
    }
    checkRun();
    MethodSettings m = transplant.method();
    LOG.info("{} run at {}: {} -> {} on {} (M={}, pool {}, k={}%, tokens {}, selection per {})",
        m.name(), s.out(), s.sourceModel() + " + " + s.sourceAdapter(), s.targetModel(),
        transplant.task().name(), s.samples(), s.poolSize(),
        m.tune().enabled() ? "tuned" : s.kPercent(), m.tokenSelection(),
        s.perBatchSelection() ? "batch" : "sample");
    Map<String, ObjectNode> stats = new RecipeRunner(force).run(recipe, lastStage);
    String md = transplant.evaluationMarkdown();
    if (stats.containsKey("evaluate") && md != null) {
      System.out.println(md);
    }
    return summary(lastStage, stats);
  }

  /** The settings a run directory is tied to: all but those that change no output. */
  private static com.typesafe.config.Config runSettings(com.typesafe.config.Config c) {
    // lt.titok.max-failed-fraction changes no output: raising it after a failed stage resumes;
    // nor does generation.continuous-batching (the same tokens as static batches)
    return c.withoutPath("eval").withoutPath("device").withoutPath("titok.max-failed-fraction")
        .withoutPath("titok.generation.continuous-batching");
  }

  /**
   * " (changed: lt.a: x -> y; ...)" from the run's stored settings.conf to these, or "" when
   * that file cannot be read or parsed (the refusal stands on the hash either way).
   */
  private String changedSettings() {
    try {
      String stored = store.readText("run/settings.conf");
      if (stored == null) {
        return "";
      }
      List<org.loratransplant.config.SettingsDiff.Change> changes =
          org.loratransplant.config.SettingsDiff.changes(
              runSettings(com.typesafe.config.ConfigFactory.parseString(stored).resolve()),
              runSettings(settings.config()));
      return changes.isEmpty() ? "" : " (changed: "
          + org.loratransplant.config.SettingsDiff.describe(changes, 6, "lt.") + ")";
    } catch (RuntimeException e) {
      return "";
    }
  }

  /** Refuses an output directory that holds a run of other settings, unless forced. */
  private void checkRun() {
    String runHash = org.loratransplant.pipeline.Keys.of(runSettings(settings.config()));
    String previous = store.completedHash("run");
    if (previous != null && !previous.equals(runHash) && !force) {
      throw new IllegalArgumentException(s.out() + " holds a run with other settings"
          + changedSettings() + "; use another lt.titok.out, set those back with --set, or "
          + "--force to redo what they change");
    }
    if (previous == null || !previous.equals(runHash)) {
      try {
        Path local = Files.createTempDirectory("lt-run-").resolve("run");
        Files.createDirectories(local);
        Files.writeString(local.resolve("settings.conf"), settings.render());
        store.commitLocalDirectory(local, "run", runHash);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
  }

  /** Registers every complete table as a Spark SQL view named after it. */
  public void registerViews() {
    for (Tables t : Tables.values()) {
      if (store.has(t)) {
        store.read(t).createOrReplaceTempView(t.tableName());
      }
    }
  }

  private ObjectNode summary(String lastStage, Map<String, ObjectNode> stats) {
    registerViews();
    ObjectNode out = JSON.createObjectNode();
    out.put("out", s.out());
    out.put("method", transplant.method().name());
    out.put("last_stage", lastStage);
    ObjectNode rows = out.putObject("rows");
    for (Tables t : Tables.values()) {
      if (store.has(t)) {
        rows.put(t.tableName(), spark.table(t.tableName()).count());
      }
    }
    if (rows.has("scored_samples")) {
      Row r = spark.sql("SELECT avg(mean_excess), sum(n_tokens) FROM scored_samples").first();
      out.put("mean_excess_pool", r.isNullAt(0) ? 0 : r.getDouble(0));
    }
    if (rows.has("selected")) {
      Row r = spark.sql("SELECT avg(mean_excess), sum(aggregate(mask, 0D, (a, x) -> a + x)),"
          + " sum(size(mask))FROM selected").first();
      out.put("mean_excess_selected", r.getDouble(0));
      out.put("kept_token_fraction_source", r.getDouble(1) / Math.max(1, r.getLong(2)));
      out.put("kept_sample_fraction", rows.get("selected").asDouble()
          / Math.max(1, rows.path("scored_samples").asDouble(1)));
    }
    ObjectNode stages = out.putObject("stages");
    stats.forEach(stages::set);
    ArrayNode order = out.putArray("stage_order");
    stats.keySet().forEach(order::add);
    store.writeText("summary.json", Reports.toJson(out));
    return out;
  }
}
