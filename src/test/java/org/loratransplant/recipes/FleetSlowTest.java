package org.loratransplant.recipes;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.pipeline.StageStore;
import org.loratransplant.table.Tables;
import org.loratransplant.testing.SharedData;
import org.loratransplant.testing.SparkTestSession;

/**
 * jobs/lt fleet end to end with TiTok at a tiny size: three adapters to llama2xs, one broken
 * (a truncated safetensors): two migrate, each trained and evaluated in a Spark task of its own,
 * the broken one is recorded with its error, and a rerun trains nothing. (About 85 s on the
 * shared 2-core machine under load, hence slow; the fast checks are {@link FleetJobTest}.)
 */
@Tag("slow")
class FleetSlowTest {
  @TempDir static Path tmp;
  static Path task;
  static Path expertA;
  static Path expertB;

  @BeforeAll
  static void experts() throws IOException {
    FleetJobTest.Fixture f = FleetJobTest.makeExperts(tmp);
    task = f.task();
    expertA = f.expertA();
    expertB = f.expertB();
  }

  static String entry(String adapter, String task) {
    return FleetJobTest.entry(adapter, task);
  }

  static Path copyAdapter(Path from, Path to) throws IOException {
    return FleetJobTest.copyAdapter(from, to);
  }

  // ---- end to end: two adapters migrate, the broken one fails alone, a rerun trains nothing --

  @Test
  void twoMigrateOneFailsAndARerunTrainsNothing() throws IOException {
    Path dir = tmp.resolve("fleet");
    Path a = copyAdapter(expertA, dir.resolve("bool-a"));
    Path b = copyAdapter(expertB, dir.resolve("bool-b"));
    Path broken = copyAdapter(expertA, dir.resolve("broken"));
    // A safetensors header that claims more bytes than the file holds.
    Path w = broken.resolve(PeftFormat.WEIGHTS_FILE);
    byte[] bytes = Files.readAllBytes(w);
    Files.write(w, java.util.Arrays.copyOf(bytes, bytes.length - 64));
    Files.writeString(dir.resolve(FleetManifest.CONF), "adapters = [\n"
        + entry("bool-a", task.toString()) + "\n" + entry("bool-b", task.toString()) + "\n"
        + entry("broken", task.toString()) + "\n]\n");
    Path out = tmp.resolve("fleet-out");
    SparkSession spark = SparkTestSession.get();
    FleetJob.Plan plan = FleetJob.Plan.of(FleetJobTest.settings(), dir, FleetJobTest.model("llama2xs"),
        out.toString(), "titok");
    FleetJob.Result r = new FleetJob(spark, plan, false).run();
    assertEquals(2, r.ok());
    assertEquals(1, r.failed());
    assertFalse(r.fails(), "1 of 3 failed, under lt.fleet.max-failed-fraction 0.5");

    List<Row> rows = new StageStore(spark, out.toString()).read(Tables.FLEET_REPORT)
        .orderBy("adapter").collectAsList();
    assertEquals(3, rows.size());
    List<String> executors = new ArrayList<>();
    for (Row row : rows.subList(0, 2)) {
      assertEquals("ok", row.getAs("status"), row.toString());
      assertNull(row.getAs("error"));
      assertEquals("titok", row.getAs("method"));
      assertEquals("tiny_bool", row.getAs("task"));
      assertEquals(org.loratransplant.task.Split.of(org.loratransplant.task.TaskFiles.load(task),
          0.25, 42).test().size(), (int) row.getAs("n"));
      Row vanilla = row.getAs("vanilla");
      Row transplanted = row.getAs("transplanted");
      Row em = transplanted.getAs("exact_match");
      double value = em.getAs("value");
      assertTrue((double) em.getAs("ci_low") <= value && value <= (double) em.getAs("ci_high"));
      assertNotNull(vanilla.getAs("choice_accuracy"), "True/False is a closed answer set");
      Row gain = row.getAs("exact_match_gain");
      assertEquals(value - (double) ((Row) vanilla.getAs("exact_match")).getAs("value"),
          (double) gain.getAs("value"), 1e-9);
      Map<String, Double> secs = scala.collection.JavaConverters.mapAsJavaMap(
          row.getAs("stage_seconds"));
      assertEquals(List.of("evaluate", "generate", "score", "select", "align", "train").stream()
          .sorted().toList(), secs.keySet().stream().sorted().toList());
      List<String> ran = scala.collection.JavaConverters.seqAsJavaList(row.getAs("stages_run"));
      assertEquals(List.of("generate", "score", "select", "align", "train", "evaluate"), ran);
      // Trained and evaluated inside a Spark task, not on the driver.
      String executor = row.getAs("executor");
      assertTrue(executor.startsWith("executor "), executor);
      executors.add(executor);
      Path adapter = out.resolve((String) row.getAs("adapter")).resolve("adapter");
      assertTrue(PeftFormat.isAdapterDir(adapter), adapter.toString());
    }
    assertFalse(executors.get(0).equals(executors.get(1)), "a task per adapter: " + executors);
    Row failed = rows.get(2);
    assertEquals("broken", failed.getAs("adapter"));
    assertEquals("failed", failed.getAs("status"));
    String error = failed.getAs("error");
    assertTrue(error.startsWith("preflight: adapter 'broken': field 'adapter' = " + broken),
        error);
    assertNull(failed.getAs("transplanted"));
    JsonNode json = SharedData.json(out.resolve("fleet_report.json"));
    assertEquals(2, json.get("ok").asInt());
    assertEquals(3, json.get("rows").size());
    assertTrue(SharedData.text(out.resolve("fleet_report.md")).contains("| broken | — | titok "
        + "| failed |"));

    // A rerun trains nothing: every stage of the finished adapters is skipped, the adapters
    // stay as they were, and the broken one is tried again (and fails again).
    Path weights = out.resolve("bool-a/adapter").resolve(PeftFormat.WEIGHTS_FILE);
    FileTime before = Files.getLastModifiedTime(weights);
    FleetJob.Result again = new FleetJob(spark, plan, false).run();
    assertEquals(2, again.ok());
    for (Row row : new StageStore(spark, out.toString()).read(Tables.FLEET_REPORT)
        .collectAsList()) {
      assertTrue(scala.collection.JavaConverters.seqAsJavaList(row.getAs("stages_run"))
          .isEmpty(), row.toString());
      assertNull(row.getAs("executor"), "no task ran");
    }
    assertEquals(before, Files.getLastModifiedTime(weights));
    assertTrue(SharedData.text(out.resolve("fleet_report.md")).contains(error.replace("|",
        "\\|")));
  }
}
