package org.loratransplant.recipes;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import javax.imageio.ImageIO;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.cli.Main;
import org.loratransplant.config.Settings;
import org.loratransplant.pipeline.StageStore;
import org.loratransplant.table.Tables;
import org.loratransplant.testing.SharedData;
import org.loratransplant.testing.SparkTestSession;

/**
 * A small comparison end to end: two methods that train and the two reference rows, two seeds,
 * one pool shared by every cell, results in every declared form, and a rerun that runs nothing
 * and reports the same.
 */
class CompareJobTest {
  @TempDir static Path tmp;
  static Path experts;
  static SparkSession spark;

  @BeforeAll
  static void trainExpert() {
    spark = SparkTestSession.get();
    experts = tmp.resolve("experts");
    int rc = Main.run(new String[] {"train-lora", "--model", model("stories260K"), "--out",
        experts.resolve("stories260K-boolean_expressions").toString(), "--conf",
        "conf/expert-boolean.conf", "--set", "lt.train.epochs=2", "--set", "lt.task.file="
        + task()});
    assertEquals(0, rc);
  }

  static String model(String name) {
    return SharedData.model(name).toString();
  }

  static String task() {
    return SharedData.root() + "/data/bbh/bbh/boolean_expressions.json";
  }

  static Settings settings(String out, String... more) {
    List<String> sets = new ArrayList<>(List.of(
        "lt.compare.out=" + out,
        "lt.compare.tasks=[\"" + task() + "\"]",
        "lt.compare.targets=[\"" + model("llama2xs") + "\"]",
        "lt.compare.seeds=[1, 2]",
        "lt.compare.methods=[vanilla, expert, sft, titok, lora-x]",
        "lt.compare.paired=[\"titok:sft\"]",
        "lt.compare.experts-dir=" + experts,
        "lt.titok.source-model=" + model("stories260K"),
        "lt.titok.samples=12",
        "lt.titok.partitions=2",
        "lt.titok.generation.batch-size=8",
        "lt.train.epochs=1",
        "lt.eval.max-new-tokens=6",
        "lt.task.file=" + task()));
    sets.addAll(Arrays.asList(more));
    return Settings.load(Path.of("conf/default.conf"), sets);
  }

  @Test
  void everyCellRunsOnOneSharedPoolAndTheReportComesBackOnARerun() throws Exception {
    String out = tmp.resolve("cmp").toString();
    CompareJob job = new CompareJob(spark, settings(out), false);
    // vanilla, expert and the training-free lora-x once (no seed dependence), sft and titok
    // per seed
    assertEquals(7, job.cells().size());
    String report = job.run();
    for (String m : List.of("vanilla", "expert", "sft", "titok", "lora-x")) {
      assertTrue(report.contains("| " + m + " "), m + " row in:\n" + report);
    }
    assertTrue(report.contains("McNemar"), report);
    // One pool for every method that trains: generated and scored once.
    Path taskDir = Path.of(out, "boolean_expressions");
    try (var dirs = Files.list(taskDir)) {
      assertEquals(1, dirs.filter(d -> d.getFileName().toString().startsWith("pool-")).count());
    }
    for (String cell : List.of("llama2xs/sft/seed-1", "llama2xs/sft/seed-2",
        "llama2xs/titok/seed-1", "llama2xs/titok/seed-2", "llama2xs/vanilla", "expert",
        "llama2xs/lora-x")) {
      assertTrue(Files.isRegularFile(taskDir.resolve(cell).resolve("evaluation")
          .resolve("evaluation.json")), cell);
    }
    // results.json: the declared fields, one row per cell and metric (4 metrics: closed answers).
    JsonNode rows = SharedData.json(Path.of(out, "results.json"));
    assertEquals(7 * 4, rows.size());
    for (String f : List.of("task", "source", "target", "method", "seed", "metric", "value",
        "ci_low", "ci_high", "n")) {
      assertTrue(rows.get(0).has(f), f);
    }
    // The same rows as Parquet, queryable.
    StageStore store = new StageStore(spark, out);
    assertEquals(28, store.read(Tables.RESULTS).count());
    // The transfer's per-module report sits beside its adapter.
    assertTrue(Files.isRegularFile(taskDir.resolve("llama2xs/lora-x/adapter")
        .resolve("transfer_report.json")));
    assertEquals(100, store.read(Tables.RESULTS).where("method = 'vanilla'").first()
        .<Integer>getAs("n"));
    BufferedImage png = ImageIO.read(Path.of(out, "plot-exact_match.png").toFile());
    assertEquals(1400, png.getWidth());
    String stored = Files.readString(Path.of(out, "report.md"));
    assertEquals(report, stored);

    // A rerun trains nothing (every stage complete) and reports the same.
    long adapterTime = Files.getLastModifiedTime(taskDir.resolve("llama2xs/sft/seed-1/adapter")
        .resolve("adapter_model.safetensors")).toMillis();
    String again = new CompareJob(spark, settings(out), false).run();
    assertEquals(report, again);
    assertEquals(adapterTime, Files.getLastModifiedTime(taskDir.resolve(
        "llama2xs/sft/seed-1/adapter").resolve("adapter_model.safetensors")).toMillis());
  }

  @Test
  void badComparisonSettingsAreRefusedBeforeAnyWork() {
    String out = tmp.resolve("bad").toString();
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> new CompareJob(spark, settings(out, "lt.compare.methods=[vanilla, nosuch]"),
            false));
    assertTrue(e.getMessage().contains("nosuch"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class,
        () -> new CompareJob(spark, settings(out, "lt.compare.paired=[\"titok-kd\"]"), false));
    assertTrue(e.getMessage().contains("titok-kd"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class,
        () -> new CompareJob(spark, settings(out, "lt.methods.sft.method.token-selection=bogus"),
            false));
    assertTrue(e.getMessage().contains("bogus"), e.getMessage());
    assertTrue(!Files.exists(Path.of(out)), "nothing written");
  }

  /**
   * Model-side transfers as rows: CA-LoRA and its inherited baseline in a column named after the
   * compressed source base, layer migration in the source base's column, each column with that
   * model's vanilla row; the compressed base made once; a rerun trains and compresses nothing.
   * No pool is involved, so this stays fast.
   */
  @Test
  void modelSideTransfersAreRowsWithTheirOwnTargetColumns() throws Exception {
    String out = tmp.resolve("side").toString();
    String[] sets = {"lt.compare.seeds=[1]",
        "lt.compare.methods=[vanilla, expert, inherit-nf4, ca-lora-nf4, migrate-layer]",
        "lt.compare.paired=[\"ca-lora-nf4:inherit-nf4\"]", "lt.calora.compare-train.epochs=1",
        "lt.eval.max-new-tokens=4"};
    CompareJob job = new CompareJob(spark, settings(out, sets), false);
    List<String> cells = job.cells().stream().map(c -> c.target() + "/" + c.method()).toList();
    assertEquals(List.of("llama2xs/vanilla", "llama2xs/expert", "stories260K-nf4/vanilla",
        "stories260K-nf4/inherit-nf4", "stories260K-nf4/ca-lora-nf4", "stories260K/vanilla",
        "stories260K/migrate-layer"), cells);
    String report = job.run();
    assertTrue(report.contains("| ca-lora-nf4 vs inherit-nf4 |")
        || report.contains("ca-lora-nf4 vs inherit-nf4"), report);
    assertEquals(java.util.Set.of("vanilla@llama2xs", "expert@llama2xs",
        "vanilla@stories260K-nf4", "inherit-nf4@stories260K-nf4", "ca-lora-nf4@stories260K-nf4",
        "vanilla@stories260K", "migrate-layer@stories260K"), exactMatchRows(out));
    Path task = Path.of(out, "boolean_expressions");
    Path nf4 = Path.of(out, "models", "stories260K-nf4");
    assertEquals(org.loratransplant.compress.Compressor.Method.NF4,
        org.loratransplant.compress.Compressor.methodOf(nf4));
    assertTrue(org.loratransplant.calora.CaLoraAdapter.isCaLora(task.resolve(
        "stories260K-nf4/ca-lora-nf4/seed-1/adapter")));
    assertTrue(Files.isRegularFile(task.resolve("stories260K-nf4/inherit-nf4/adapter")
        .resolve("adapter_model.safetensors")), "inherit trains nothing: one unseeded cell");
    String migrated = Files.readString(task.resolve(
        "stories260K/migrate-layer/seed-1/adapter/adapter_config.json"));
    // The top layer's LoRA is gone; the layers below keep theirs (layer 3 retrained).
    assertTrue(migrated.replaceAll("\\s", "").contains("\"layers_to_transform\":[0,1,2,3]"),
        migrated);
    assertTrue(Files.readString(task.resolve(
        "stories260K-nf4/vanilla/evaluation/evaluation.md")).contains("stories260K-nf4"));
    // The inherited adapter is the expert's, unchanged, on the NF4 base: it keeps some of its
    // exact match, where the bare NF4 base scores nothing.
    double inherited = exact(out, "inherit-nf4");
    assertTrue(inherited > exact(out, "vanilla", "stories260K-nf4"), "inherit " + inherited);

    List<Path> made = List.of(nf4.resolve("model.safetensors"),
        task.resolve("stories260K-nf4/ca-lora-nf4/seed-1/adapter/recovery.safetensors"),
        task.resolve("stories260K/migrate-layer/seed-1/adapter/adapter_model.safetensors"),
        task.resolve("stories260K-nf4/inherit-nf4/evaluation/evaluation.json"));
    assertRerunChangesNothing(out, sets, report, made);
  }

  /**
   * AdaLoRA and QLoRA rows (they train on the pool, so they generate one: ~50 s): in the
   * target's column, AdaLoRA written in PEFT's ADALORA layout, QLoRA evaluated on the NF4 copy
   * of the target made in the run directory; a rerun trains nothing.
   */
  @Test
  @org.junit.jupiter.api.Tag("slow")
  void adaloraAndQloraAreRowsOfTheTargetColumn() throws Exception {
    String out = tmp.resolve("variants").toString();
    String[] sets = {"lt.compare.seeds=[1]", "lt.compare.methods=[vanilla, adalora, qlora]",
        "lt.compare.paired=[]", "lt.method.tune.k-percent=[100]", "lt.titok.samples=6",
        "lt.titok.generation.max-query-tokens=24", "lt.titok.generation.max-response-tokens=6",
        "lt.eval.max-new-tokens=4"};
    String report = new CompareJob(spark, settings(out, sets), false).run();
    assertEquals(java.util.Set.of("vanilla@llama2xs", "adalora@llama2xs", "qlora@llama2xs"),
        exactMatchRows(out));
    Path task = Path.of(out, "boolean_expressions");
    assertTrue(org.loratransplant.lora.adalora.AdaLoraFormat.isAdaLora(task.resolve(
        "llama2xs/adalora/seed-1/adapter")));
    assertEquals(org.loratransplant.compress.Compressor.Method.NF4,
        org.loratransplant.compress.Compressor.methodOf(Path.of(out, "models", "llama2xs-nf4")));
    assertTrue(Files.readString(task.resolve("llama2xs/qlora/seed-1/evaluation/evaluation.md"))
        .contains("llama2xs-nf4"), "QLoRA is evaluated on the NF4 base");
    assertRerunChangesNothing(out, sets, report, List.of(
        task.resolve("llama2xs/adalora/seed-1/adapter/adapter_model.safetensors"),
        task.resolve("llama2xs/qlora/seed-1/adapter/adapter_model.safetensors"),
        Path.of(out, "models", "llama2xs-nf4", "model.safetensors")));
  }

  /** method@target of every exact-match row; fails on a duplicate. */
  private static java.util.Set<String> exactMatchRows(String out) {
    java.util.Set<String> seen = new java.util.TreeSet<>();
    for (JsonNode r : SharedData.json(Path.of(out, "results.json"))) {
      if (r.get("metric").asText().equals("exact_match")) {
        String k = r.get("method").asText() + "@" + r.get("target").asText();
        assertTrue(seen.add(k), "one exact-match row per (method, target): " + k);
      }
    }
    return seen;
  }

  private static double exact(String out, String method, String... target) {
    for (JsonNode r : SharedData.json(Path.of(out, "results.json"))) {
      if (r.get("metric").asText().equals("exact_match") && r.get("method").asText()
          .equals(method) && (target.length == 0 || r.get("target").asText().equals(target[0]))) {
        return r.get("value").asDouble();
      }
    }
    throw new AssertionError("no exact-match row of " + method);
  }

  /** A second run reports the same and rewrites none of {@code made}. */
  private static void assertRerunChangesNothing(String out, String[] sets, String report,
      List<Path> made) throws Exception {
    List<Long> times = new ArrayList<>();
    for (Path f : made) {
      times.add(Files.getLastModifiedTime(f).toMillis());
    }
    assertEquals(report, new CompareJob(spark, settings(out, sets), false).run());
    for (int i = 0; i < made.size(); i++) {
      assertEquals(times.get(i), Files.getLastModifiedTime(made.get(i)).toMillis(),
          made.get(i).toString());
    }
  }

  @Test
  void badModelSideAndAdapterValuesAreRefusedNamingTheKey() {
    String out = tmp.resolve("bad-side").toString();
    String[][] cases = {
        {"lt.methods.inherit-nf4.method.model-side.kind=shrink", "model-side.kind", "shrink"},
        {"lt.methods.ca-lora-nf4.method.model-side.compress=nf5", "model-side.compress", "nf5"},
        {"lt.methods.qlora.method.compress-target=\"prune:1.5\"", "compress-target", "1.5"},
        {"lt.methods.adalora.method.adapter=dora", "adapter", "dora"},
        {"lt.methods.adalora.method.objective=kd", "objective", "kd"},
        {"lt.adalora.init-r-factor=1.0", "init-r-factor", "1.0"},
        {"lt.migrate.data=bogus", "lt.migrate.data", "bogus"},
        {"lt.calora.mse-layers=middle", "mse-layers", "middle"}};
    for (String[] c : cases) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> new CompareJob(spark, settings(out, c[0], "lt.compare.methods=[vanilla, "
              + "inherit-nf4, ca-lora-nf4, migrate-layer, adalora, qlora]",
              "lt.compare.paired=[]"), false), c[0]);
      assertTrue(e.getMessage().contains(c[1]) && e.getMessage().contains(c[2])
          && e.getMessage().contains("lt.methods."), c[0] + " -> " + e.getMessage());
    }
    assertTrue(!Files.exists(Path.of(out)), "nothing written");
  }

  /** Outside a comparison nobody makes the derived model: a run on the wrong one is refused. */
  @Test
  void rowsOnDerivedModelsRefuseAModelThatIsNotOne() {
    String out = tmp.resolve("bad-titok").toString();
    StageStore store = new StageStore(spark, out);
    String adapter = "lt.titok.source-adapter=" + experts.resolve(
        "stories260K-boolean_expressions");
    String target = "lt.titok.target-model=" + model("llama2xs");
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> new Transplant(spark, settings(out, adapter, target,
            "lt.method.compress-target=nf4"), store, store, 42, false));
    assertTrue(e.getMessage().contains("lt.titok.target-model")
        && e.getMessage().contains("not a nf4 copy"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class,
        () -> new Transplant(spark, settings(out, adapter, target,
            "lt.method.model-side.kind=migrate-layer"), store, store, 42, false));
    assertTrue(e.getMessage().contains("runs on the source base itself"), e.getMessage());
  }
}
