package org.loratransplant.spark;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.pipeline.ExecutorModels;
import org.loratransplant.pipeline.StageStore;
import org.loratransplant.table.Tables;
import org.loratransplant.testing.S3TestServer;
import org.loratransplant.testing.SharedData;
import org.loratransplant.testing.SparkTestSession;
import org.loratransplant.testing.StandaloneCluster;
import org.loratransplant.transfer.RandomLora;

/**
 * The pipeline on a real Spark standalone cluster (a master and two workers, each its own JVM,
 * executors in JVMs of their own) through {@code SparkSubmit} with the shaded application jar,
 * as a user runs it: a conf with relative paths, the base models on S3 (S3Proxy), the expert
 * adapter shipped with {@code --archives}. Its tables must equal those of the same submission in
 * local mode, each executor JVM must load the model once, and a run whose executor JVM is
 * SIGKILLed in the middle of a stage must still finish with the same tables.
 *
 * <p>Needs {@code target/lora-transplant-*-spark.jar} and {@code target/lib} from
 * {@code mvn package}: it runs in the {@code integration-test} phase of {@code mvn -Pslow verify}
 * (tag {@code cluster}), or on its own after a package with
 * {@code mvn -o -Pslow verify -Dtest=SparkClusterTest -Dsurefire.failIfNoSpecifiedTests=false}.
 * Without the jar it is skipped, saying so.
 */
@Tag("slow")
@Tag("cluster")
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
@Timeout(value = 25, unit = TimeUnit.MINUTES)
class SparkClusterTest {
  @RegisterExtension static final S3TestServer S3 = new S3TestServer();
  @TempDir static Path tmp;
  static Path jar;
  static Path job;
  static StandaloneCluster cluster;
  static SparkSession spark;
  static final Duration RUN_TIMEOUT = Duration.ofMinutes(10);
  static final Pattern LOAD = Pattern.compile(Pattern.quote(ExecutorModels.LOAD_LOG)
      + " #\\d+ in this JVM \\(pid (\\d+)\\)");
  static long t0;

  @BeforeAll
  static void setUp() throws IOException {
    t0 = System.nanoTime();
    jar = sparkJar();
    assumeTrue(jar != null, "SparkClusterTest needs target/lora-transplant-*-spark.jar and "
        + "target/lib: run 'mvn package' first, or 'mvn -Pslow verify' (skipped)");
    spark = SparkTestSession.get();
    // What a user has: a project folder with the conf and the data (relative paths), models on
    // S3, an expert adapter zipped for --archives.
    job = Files.createDirectories(tmp.resolve("job"));
    Files.createDirectories(job.resolve("conf"));
    for (String f : List.of("base.conf", "default.conf", "expert-boolean.conf")) {
      Files.copy(Path.of("conf", f), job.resolve("conf").resolve(f));
    }
    Files.createDirectories(job.resolve("data"));
    Files.copy(SharedData.root().resolve("data/bbh/bbh/boolean_expressions.json"),
        job.resolve("data/boolean_expressions.json"));
    String source = S3.putDirectory(SharedData.model("stories260K"), "models/stories260K");
    String target = S3.putDirectory(SharedData.model("llama2xs"), "models/llama2xs");
    Path expert = tmp.resolve("expert-src/expert");
    // A small random LoRA stands in for a trained expert (scale alpha / r = 0.25).
    RandomLora.write(expert, SharedData.model("stories260K"), 4, 1, 11);
    zip(expert, job.resolve("experts.zip"));
    Files.writeString(job.resolve("conf/cluster.conf"), String.join("\n",
        "include \"default.conf\"",
        "lt {",
        "  task.file = data/boolean_expressions.json",
        "  titok {",
        "    method = titok",
        "    source-model = \"" + source + "\"",
        "    source-adapter = e/expert",
        "    expert-conf = \"\"",
        "    target-model = \"" + target + "\"",
        "    samples = 8",
        "    partitions = 2",
        "    generation { batch-size = 8, max-query-tokens = 24, max-response-tokens = 8 }",
        "  }",
        "}", ""));
    cluster = StandaloneCluster.start(tmp.resolve("cluster"), Path.of("target/lib"), 2, 1,
        "1200m");
  }

  @AfterAll
  static void tearDown() {
    if (cluster != null) {
      cluster.close();
    }
    System.err.printf("SparkClusterTest: wall time %.1f s (cluster start to stop, 3 runs)%n",
        (System.nanoTime() - t0) / 1e9);
  }

  @Test
  @Order(1)
  void aClusterRunGivesTheLocalTablesWithOneModelLoadPerExecutor() {
    StandaloneCluster.Submission local = submit("local[2]", "runs/local");
    assertEquals(0, local.exitCode(), local.stderr());
    Set<Path> before = new HashSet<>(cluster.executorLogs());
    StandaloneCluster.Submission run = submit(cluster.masterUrl(), "runs/cluster");
    assertEquals(0, run.exitCode(), run.stderr());
    System.err.printf("SparkClusterTest: local run %.1f s, cluster run %.1f s%n",
        local.wallTime().toMillis() / 1e3, run.wallTime().toMillis() / 1e3);
    assertSameTables("runs/local", "runs/cluster");
    List<Path> logs = newLogs(before);
    Map<Long, Integer> loads = loadsByPid(logs);
    System.err.println("SparkClusterTest: model loads per executor JVM pid: " + loads);
    assertFalse(loads.isEmpty(), "no executor loaded a model: " + logs);
    loads.forEach((pid, n) -> assertEquals(1, n, "model loads in executor JVM " + pid
        + " (generate and score both ran there): " + loads));
    // Both executors share one model cache on this machine: one of them downloaded the
    // source model, the other found the finished copy (the cross-JVM lock at work).
    assertEquals(1, count(logs, "model cache: copied " + S3.uri("models/stories260K") + " "),
        "downloads of the source model across the executors");
    assertTrue(local.stderr().contains("model loads in the driver JVM: 1"), "local mode loads "
        + "the model once in its one JVM");
  }

  @Test
  @Order(2)
  void anExecutorKilledMidStageLeavesTheTablesUnchanged() throws Exception {
    Set<Path> before = new HashSet<>(cluster.executorLogs());
    CompletableFuture<StandaloneCluster.Submission> running = CompletableFuture.supplyAsync(
        () -> submit(cluster.masterUrl(), "runs/killed"));
    // An executor has started a task of the generate stage once it logs its model load.
    long killed = -1;
    long deadline = System.nanoTime() + RUN_TIMEOUT.toNanos();
    while (killed < 0 && !running.isDone() && System.nanoTime() < deadline) {
      Map<Long, Integer> loads = loadsByPid(newLogs(before));
      if (!loads.isEmpty()) {
        killed = loads.keySet().iterator().next();
        long pid = killed;
        ProcessHandle h = ProcessHandle.of(pid).orElseThrow(() -> new AssertionError(
            "executor JVM " + pid + " is gone before the kill"));
        assertTrue(cluster.executors().stream().anyMatch(e -> e.pid() == pid),
            pid + " is one of the workers' executor JVMs");
        assertTrue(h.destroyForcibly(), "SIGKILL to " + pid); // SIGKILL on Linux
        h.onExit().get(30, TimeUnit.SECONDS);
      } else {
        Thread.sleep(100);
      }
    }
    assertTrue(killed > 0, "no executor loaded a model before the run ended");
    StandaloneCluster.Submission run = running.get(RUN_TIMEOUT.toMillis(),
        TimeUnit.MILLISECONDS);
    assertEquals(0, run.exitCode(), run.stderr());
    System.err.printf("SparkClusterTest: run with executor %d killed %.1f s%n", killed,
        run.wallTime().toMillis() / 1e3);
    // The kill hit a running task, and the job went on without it.
    assertTrue(run.stderr().contains("ExecutorLostFailure"), "a task was lost with the "
        + "executor");
    assertSameTables("runs/local", "runs/killed");
    Map<Long, Integer> loads = loadsByPid(newLogs(before));
    System.err.println("SparkClusterTest: model loads per executor JVM pid: " + loads);
    run.stderr().lines().filter(l -> l.contains("ExecutorLostFailure")).findFirst()
        .ifPresent(l -> System.err.println("SparkClusterTest: driver saw: " + l));
    assertTrue(loads.size() >= 2, "a replacement executor took over: " + loads);
    loads.forEach((pid, n) -> assertEquals(1, n, "model loads in executor JVM " + pid));
  }

  private StandaloneCluster.Submission submit(String master, String out) {
    Path djl = Path.of("target", "djl").toAbsolutePath();
    List<String> args = new ArrayList<>(List.of("--master", master,
        "--class", "org.loratransplant.cli.Main",
        "--archives", "experts.zip#e",
        "--conf", "spark.ui.enabled=false",
        "--conf", "spark.executor.memory=900m",
        "--conf", "spark.executorEnv.DJL_CACHE_DIR=" + djl,
        "--conf", "spark.executorEnv.ENGINE_CACHE_DIR=" + djl,
        "--conf", "spark.executorEnv.LT_MODEL_CACHE=" + tmp.resolve("executor-model-cache")));
    S3.sparkConf().forEach((k, v) -> args.addAll(List.of("--conf", k + "=" + v)));
    args.addAll(List.of(jar.toString(), "titok", "--conf", "conf/cluster.conf", "--set",
        "lt.titok.out=" + out, "--until", "score"));
    return cluster.submit(job, args, Map.of("DJL_CACHE_DIR", djl.toString(),
        "ENGINE_CACHE_DIR", djl.toString(),
        "LT_MODEL_CACHE", tmp.resolve("driver-model-cache").toString()), RUN_TIMEOUT);
  }

  private static void assertSameTables(String a, String b) {
    StageStore x = new StageStore(spark, job.resolve(a).toString());
    StageStore y = new StageStore(spark, job.resolve(b).toString());
    for (Tables t : List.of(Tables.POOL, Tables.SCORED_SAMPLES, Tables.SCORED_TOKENS)) {
      List<String> want = rows(x, t);
      assertFalse(want.isEmpty(), t + " of " + a + " is empty");
      assertEquals(want, rows(y, t), t.tableName() + ": " + a + " vs " + b);
    }
  }

  private static List<String> rows(StageStore store, Tables t) {
    return store.read(t).collectAsList().stream().map(Row::toString).sorted()
        .collect(Collectors.toList());
  }

  private List<Path> newLogs(Set<Path> before) {
    return cluster.executorLogs().stream().filter(p -> !before.contains(p)).toList();
  }

  /** Model loads per executor JVM pid, from the executors' stderr. */
  static Map<Long, Integer> loadsByPid(List<Path> logs) {
    Map<Long, Integer> out = new TreeMap<>();
    for (Path log : logs) {
      for (String line : lines(log)) {
        Matcher m = LOAD.matcher(line);
        if (m.find()) {
          out.merge(Long.parseLong(m.group(1)), 1, Integer::sum);
        }
      }
    }
    return out;
  }

  static long count(List<Path> logs, String text) {
    return logs.stream().flatMap(l -> lines(l).stream()).filter(s -> s.contains(text)).count();
  }

  static List<String> lines(Path log) {
    try {
      return Files.readAllLines(log);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  static Path sparkJar() throws IOException {
    Path target = Path.of("target");
    if (!Files.isDirectory(target.resolve("lib"))) {
      return null;
    }
    try (Stream<Path> s = Files.list(target)) {
      return s.filter(p -> p.getFileName().toString().matches("lora-transplant-.*-spark\\.jar"))
          .map(Path::toAbsolutePath).findFirst().orElse(null);
    }
  }

  static void zip(Path dir, Path zip) throws IOException {
    try (OutputStream os = Files.newOutputStream(zip);
        ZipOutputStream z = new ZipOutputStream(os);
        Stream<Path> files = Files.walk(dir)) {
      for (Path f : (Iterable<Path>) files.filter(Files::isRegularFile).sorted()::iterator) {
        z.putNextEntry(new ZipEntry(dir.getFileName() + "/" + dir.relativize(f)));
        Files.copy(f, z);
        z.closeEntry();
      }
    }
  }
}
