package org.loratransplant.recipes;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.cli.Main;
import org.loratransplant.config.Settings;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.pipeline.StageStore;
import org.loratransplant.table.Tables;
import org.loratransplant.testing.S3TestServer;
import org.loratransplant.testing.SharedData;
import org.loratransplant.testing.SparkTestSession;

/**
 * jobs/lt fleet, the fast part: two stories260K experts (trained here for a few steps on a
 * 16-example task) and broken copies, migrated to llama2xs. The manifest's form is refused whole
 * before any work; each broken adapter fails alone with its error while a good one migrates
 * (training-free, to stay fast; {@link FleetSlowTest} trains). The end to end with TiTok is
 * {@link FleetSlowTest}.
 */
class FleetJobTest {
  @RegisterExtension
  static final S3TestServer S3 = new S3TestServer();

  @TempDir static Path tmp;
  static Path task;
  static Path expertA;
  static Path expertB;

  @BeforeAll
  static void experts() throws IOException {
    Fixture f = makeExperts(tmp);
    task = f.task();
    expertA = f.expertA();
    expertB = f.expertB();
  }

  /** The tiny task and two stories260K experts trained on it for 3 steps (seeds 1 and 2). */
  record Fixture(Path task, Path expertA, Path expertB) {}

  static Fixture makeExperts(Path tmp) throws IOException {
    Path task = tmp.resolve("tiny_bool.jsonl");
    // Every "[not] A and|or B" over True/False: 16 examples, 4 of them held out.
    StringBuilder sb = new StringBuilder();
    for (String neg : List.of("", "not ")) {
      for (String op : List.of("and", "or")) {
        for (boolean a : List.of(true, false)) {
          for (boolean b : List.of(true, false)) {
            boolean x = neg.isEmpty() ? a : !a;
            boolean r = op.equals("and") ? x && b : x || b;
            sb.append("{\"input\": \"").append(neg).append(cap(a)).append(' ').append(op)
                .append(' ').append(cap(b)).append("\", \"target\": \"").append(cap(r))
                .append("\"}\n");
          }
        }
      }
    }
    Files.writeString(task, sb.toString());
    Path expertA = tmp.resolve("adapters/expert-a");
    Path expertB = tmp.resolve("adapters/expert-b");
    for (Path out : List.of(expertA, expertB)) {
      int rc = Main.run(new String[] {"train-lora", "--model", model("stories260K"), "--out",
          out.toString(), "--conf", "conf/expert-boolean.conf", "--task", task.toString(),
          "--set", "lt.train.epochs=1", "--set", "lt.seed=" + (out.equals(expertA) ? 1 : 2)});
      assertEquals(0, rc, "train-lora " + out);
    }
    return new Fixture(task, expertA, expertB);
  }

  static String cap(boolean b) {
    return b ? "True" : "False";
  }

  static String model(String name) {
    return SharedData.model(name).toString();
  }

  /** The job's conf at the smallest size that still runs every stage. */
  static Settings settings() {
    return Settings.load(Path.of("conf/default.conf"), List.of(
        "lt.task.test-fraction=0.25",
        "lt.titok.samples=4",
        "lt.titok.seed-examples=3",
        "lt.titok.partitions=2",
        "lt.titok.generation.batch-size=8",
        "lt.titok.generation.max-query-tokens=24",
        "lt.titok.generation.max-response-tokens=6",
        "lt.titok.score-batch-size=8",
        "lt.train.epochs=1",
        "lt.eval.max-new-tokens=4"));
  }

  static String entry(String adapter, String task) {
    return "{ adapter = \"" + adapter + "\", source-model = \"" + model("stories260K")
        + "\", task = \"" + task + "\" }";
  }

  static Path manifest(String dir, String... entries) throws IOException {
    Path d = tmp.resolve(dir);
    Files.createDirectories(d);
    Files.writeString(d.resolve(FleetManifest.CONF), "adapters = [\n  "
        + String.join("\n  ", entries) + "\n]\n");
    return d;
  }

  static Path copyAdapter(Path from, Path to) throws IOException {
    Files.createDirectories(to);
    for (String f : List.of(PeftFormat.CONFIG_FILE, PeftFormat.WEIGHTS_FILE)) {
      Files.copy(from.resolve(f), to.resolve(f));
    }
    return to;
  }

  /** A copy of an adapter with one weight set to NaN (the first value of the first tensor). */
  static Path nanAdapter(Path from, Path to) throws IOException {
    copyAdapter(from, to);
    Path w = to.resolve(PeftFormat.WEIGHTS_FILE);
    byte[] b = Files.readAllBytes(w);
    long n = ByteBuffer.wrap(b, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
    JsonNode header = new com.fasterxml.jackson.databind.ObjectMapper().readTree(
        new String(b, 8, (int) n, StandardCharsets.UTF_8));
    String first = null;
    for (var it = header.fieldNames(); it.hasNext(); ) {
      String k = it.next();
      if (!k.equals("__metadata__")) {
        first = k;
        break;
      }
    }
    int off = 8 + (int) n + header.get(first).get("data_offsets").get(0).asInt();
    ByteBuffer.wrap(b, off, 4).order(ByteOrder.LITTLE_ENDIAN).putFloat(Float.NaN);
    Files.write(w, b);
    return to;
  }

  // ---- the manifest, refused whole before any work ------------------------------------------

  static String refused(String dir, String... entries) throws IOException {
    Path d = manifest(dir, entries);
    return assertThrows(IllegalArgumentException.class, () -> FleetJob.Plan.of(settings(), d,
        model("llama2xs"), tmp.resolve("out-" + dir).toString(), null)).getMessage();
  }

  @Test
  void manifestErrorsNameTheEntryAndField() throws IOException {
    String ok = entry(expertA.toString(), task.toString());
    String m = refused("m1", ok, "{ adapter = x, task = t.json }");
    assertTrue(m.contains("adapters[1] (x): field 'source-model' is missing"), m);
    m = refused("m2", ok, "{ adapter = x, source-model = s, task = t, rank = 8 }");
    assertTrue(m.contains("adapters[1]: unknown field 'rank'"), m);
    m = refused("m3", ok, ok);
    assertTrue(m.contains("adapters[1] (expert-a): field 'name': 'expert-a' is used by an "
        + "earlier entry"), m);
    m = refused("m4", "{ adapter = x, source-model = s, task = [a] }");
    assertTrue(m.contains("adapters[0] (x): field 'task' must be a string, got list"), m);
    m = refused("m5", "{ adapter = x, source-model = s, task = t, method = nope }");
    assertTrue(m.contains("adapter 'x': field 'method' 'nope' is no preset of lt.methods"), m);
    m = refused("m6", "{ adapter = x, source-model = s, task = t, method = vanilla }");
    assertTrue(m.contains("'vanilla' only evaluates"), m);
    m = refused("m7", "{ name = \"a/b\", adapter = x, source-model = s, task = t }");
    assertTrue(m.contains("adapters[0] (a/b): field 'name' must be letters"), m);
    m = refused("m8", "42");
    assertTrue(m.contains("adapters[0] is a number, not an entry"), m);
    m = refused("m9");
    assertTrue(m.contains("'adapters' is empty"), m);
    Path none = tmp.resolve("m10");
    Files.createDirectories(none);
    m = assertThrows(IllegalArgumentException.class, () -> FleetJob.Plan.of(settings(), none,
        model("llama2xs"), null, null)).getMessage();
    assertTrue(m.contains("no manifest (fleet.conf or fleet.json)"), m);
    Path d = manifest("m11", ok);
    m = assertThrows(IllegalArgumentException.class, () -> FleetJob.Plan.of(settings(), d,
        tmp.resolve("no-such-model").toString(), null, null)).getMessage();
    assertTrue(m.contains("--target-model = ") && m.contains("no config.json"), m);
    // The command refuses it with exit 2 before a Spark session starts.
    assertEquals(2, Main.run(new String[] {"fleet", "--adapters", tmp.resolve("m1").toString(),
        "--target-model", model("llama2xs")}));
    // Relative paths resolve against the manifest's folder; JSON works too.
    Path j = tmp.resolve("m12");
    Files.createDirectories(j);
    Files.writeString(j.resolve(FleetManifest.JSON), "{\"adapters\": [{\"adapter\": "
        + "\"../adapters/expert-a\", \"source-model\": \"" + model("stories260K") + "\", "
        + "\"task\": \"../tiny_bool.jsonl\", \"method\": \"titok\"}]}");
    FleetManifest.Entry e = FleetManifest.load(j).entries().get(0);
    assertEquals(expertA.toAbsolutePath().normalize(), e.adapter());
    assertEquals(task.toAbsolutePath().normalize(), e.task());
    assertEquals("expert-a", e.name());
    assertEquals("titok", e.method());
  }

  @Test
  void failedShareDecidesTheExitStatus() throws IOException {
    FleetJob.Plan p = FleetJob.Plan.of(settings(), manifest("p1", entry(expertA.toString(),
        task.toString())), model("llama2xs"), null, null);
    assertEquals(0.5, p.maxFailedFraction());
    assertFalse(p.fails(0, 3));
    assertFalse(p.fails(1, 3));
    assertTrue(p.fails(2, 3));
    assertTrue(p.fails(1, 1));
    assertFalse(p.fails(1, 2));
  }

  // ---- preflight: each broken adapter fails alone, with its error ---------------------------

  @Test
  void brokenAdaptersFailAloneAndTheRestGoOn() throws IOException {
    Path nan = nanAdapter(expertA, tmp.resolve("pre/nan"));
    Path corrupt = copyAdapter(expertA, tmp.resolve("pre/corrupt"));
    Path w = corrupt.resolve(PeftFormat.WEIGHTS_FILE);
    Files.write(w, java.util.Arrays.copyOf(Files.readAllBytes(w), 100));
    // The good one with a training-free method (its own 'method'): transfer, then evaluate in
    // its Spark task, in seconds.
    Path dir = manifest("pre", entry(nan.toString(), task.toString()),
        entry(corrupt.toString(), task.toString()),
        entry(expertA.toString(), tmp.resolve("missing.json").toString()),
        "{ name = wrong-base, adapter = \"" + expertA + "\", source-model = \""
            + model("llama2xs") + "\", task = \"" + task + "\" }",
        "{ name = good, adapter = \"" + expertB + "\", source-model = \""
            + model("stories260K") + "\", task = \"" + task + "\", method = lora-x }");
    SparkSession spark = SparkTestSession.get();
    Path out = tmp.resolve("pre-out");
    FleetJob.Plan plan = FleetJob.Plan.of(settings(), dir, model("llama2xs"),
        out.toString(), "titok");
    FleetJob.Result r = new FleetJob(spark, plan, false).run();
    assertEquals(1, r.ok());
    assertEquals(4, r.failed());
    assertTrue(r.fails(), "4 of 5 failed, more than lt.fleet.max-failed-fraction 0.5");
    Map<String, String> errors = errors(spark, out);
    assertTrue(errors.get("nan").matches("preflight: adapter 'nan': field 'adapter' = .*"
        + "holds NaN at index 0.*"), errors.get("nan"));
    assertTrue(errors.get("corrupt").startsWith("preflight: adapter 'corrupt': field "
        + "'adapter' = "), errors.get("corrupt"));
    assertTrue(errors.get("expert-a").contains("field 'task' = ")
        && errors.get("expert-a").endsWith("missing.json: no such file"), errors.get("expert-a"));
    assertTrue(errors.get("wrong-base").startsWith("preflight: adapter 'wrong-base': field "
        + "'adapter'"), errors.get("wrong-base"));
    assertNull(errors.get("good"));
    assertFalse(Files.exists(out.resolve("nan")), "nothing written for a failed preflight");
    Row good = new StageStore(spark, out.toString()).read(Tables.FLEET_REPORT)
        .where("adapter = 'good'").first();
    assertEquals("lora-x", good.getAs("method"));
    assertEquals(List.of("transfer", "evaluate"),
        scala.collection.JavaConverters.seqAsJavaList(good.getAs("stages_run")));
    assertTrue(((String) good.getAs("executor")).startsWith("executor "));
    Row em = ((Row) good.getAs("transplanted")).getAs("exact_match");
    assertTrue((double) em.getAs("ci_low") <= (double) em.getAs("value"));
    // A rerun redoes nothing for the good one and tries the broken ones again.
    FleetJob.Result again = new FleetJob(spark, plan, false).run();
    assertEquals(1, again.ok());
    Row rerun = new StageStore(spark, out.toString()).read(Tables.FLEET_REPORT)
        .where("adapter = 'good'").first();
    assertTrue(scala.collection.JavaConverters.seqAsJavaList(rerun.getAs("stages_run"))
        .isEmpty());
    assertEquals(errors, errors(spark, out));
  }

  /**
   * A target base on s3a:// (a team's models live in a bucket): refused whole, naming the URI,
   * when it is no model; otherwise fetched into the model cache and migrated to.
   */
  @Test
  void aTargetOnS3aIsCheckedWhenTheJobStartsAndMigratedTo() throws IOException {
    SparkSession spark = SparkTestSession.withS3(S3);
    String target = S3.putDirectory(SharedData.model("llama2xs"), "models/llama2xs");
    Path notes = tmp.resolve("not-a-model");
    Files.createDirectories(notes);
    Files.writeString(notes.resolve("README.md"), "weights elsewhere\n");
    String notModel = S3.putDirectory(notes, "models/notes");
    String good = "{ name = good, adapter = \"" + expertB + "\", source-model = \""
        + model("stories260K") + "\", task = \"" + task + "\", method = lora-x }";
    Path out = tmp.resolve("s3-target-out");
    FleetJob.Plan bad = FleetJob.Plan.of(settings(), manifest("s3bad", good), notModel,
        out.toString(), "titok");
    String m = assertThrows(IllegalArgumentException.class,
        () -> new FleetJob(spark, bad, false).run()).getMessage();
    assertTrue(m.startsWith("--target-model = " + notModel) && m.contains("no config.json"), m);
    FleetJob.Plan plan = FleetJob.Plan.of(settings(), manifest("s3", good), target,
        out.toString(), "titok");
    assertEquals(target, plan.target(), "a URI stays as written");
    FleetJob.Result r = new FleetJob(spark, plan, false).run();
    assertEquals(1, r.ok(), r.markdown());
    Row row = new StageStore(spark, out.toString()).read(Tables.FLEET_REPORT).first();
    assertEquals(target, row.getAs("target"));
    assertEquals("ok", row.getAs("status"));
  }

  static Map<String, String> errors(SparkSession spark, Path out) {
    Map<String, String> m = new TreeMap<>();
    for (Row row : new StageStore(spark, out.toString()).read(Tables.FLEET_REPORT)
        .select("adapter", "status", "error").collectAsList()) {
      if (row.getString(1).equals("failed")) {
        m.put(row.getString(0), row.getString(2));
      }
    }
    return m;
  }
}
