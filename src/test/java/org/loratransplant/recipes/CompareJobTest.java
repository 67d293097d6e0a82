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
}
