package org.loratransplant.testing;

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A real Spark standalone cluster on this machine for tests: one
 * {@code org.apache.spark.deploy.master.Master} and N {@code org.apache.spark.deploy.worker.Worker}
 * JVMs, each its own process, bound to 127.0.0.1 on random free ports, run from the jars Maven
 * put in {@code target/lib}. Workers launch executors as child JVMs, as on any cluster; jobs are
 * sent with {@link #submit} ({@code org.apache.spark.deploy.SparkSubmit}, client mode, the driver
 * in a process of its own).
 *
 * <p>{@code SPARK_HOME} is a folder under {@code dir} whose {@code jars/} links every jar of
 * {@code target/lib} (a worker builds each executor's class path from {@code $SPARK_HOME/jars});
 * {@code SPARK_SCALA_VERSION=2.12} spares the launcher library from looking for a Spark build
 * tree. Every JVM gets the flags Spark 3.5 needs on Java 17 ({@link #jvmFlags()}).
 *
 * <p>{@link #close()} stops everything it started, whatever state it is in: each process and all
 * its descendants (a worker's executors, a driver's children) are destroyed, forcibly after a
 * short grace; a JVM shutdown hook does the same if the test JVM exits first.
 */
public final class StandaloneCluster implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(StandaloneCluster.class);
  private static final Duration START_TIMEOUT = Duration.ofSeconds(120);
  /** How an executor JVM (a worker's child) is told apart by its command line. */
  private static final Pattern EXECUTOR_COMMAND = Pattern.compile(
      "CoarseGrainedExecutorBackend");

  private final Path dir;
  private final Path sparkHome;
  private final Path libDir;
  private final Map<String, String> env;
  private final List<Process> processes = new ArrayList<>();
  private final List<Path> workDirs = new ArrayList<>();
  private final List<Process> workers = new ArrayList<>();
  private final Thread shutdownHook = new Thread(this::close, "standalone-cluster-stop");
  private String masterUrl;
  private boolean closed;

  private StandaloneCluster(Path dir, Path libDir) {
    this.dir = dir.toAbsolutePath();
    this.libDir = libDir.toAbsolutePath();
    this.sparkHome = this.dir.resolve("spark-home");
    this.env = new LinkedHashMap<>();
    env.put("SPARK_HOME", sparkHome.toString());
    env.put("SPARK_SCALA_VERSION", "2.12");
    env.put("SPARK_LOCAL_IP", "127.0.0.1");
    // Workers and executors must not read a machine-wide Spark setup.
    env.put("SPARK_CONF_DIR", this.dir.resolve("spark-conf").toString());
    Runtime.getRuntime().addShutdownHook(shutdownHook);
  }

  /**
   * Starts a master and {@code workers} workers, each offering {@code coresPerWorker} cores and
   * {@code memoryPerWorker} (e.g. "1500m") to executors, and waits until every worker has
   * registered.
   *
   * @param dir an empty scratch directory (SPARK_HOME, logs, the workers' work dirs)
   * @param libDir the jars of Spark, Hadoop and their dependencies ({@code target/lib})
   */
  public static StandaloneCluster start(Path dir, Path libDir, int workers, int coresPerWorker,
      String memoryPerWorker) {
    StandaloneCluster c = new StandaloneCluster(dir, libDir);
    try {
      c.startAll(workers, coresPerWorker, memoryPerWorker);
      return c;
    } catch (RuntimeException | Error e) {
      c.close();
      throw e;
    }
  }

  private void startAll(int nWorkers, int cores, String memory) {
    long t0 = System.nanoTime();
    try {
      Path jars = Files.createDirectories(sparkHome.resolve("jars"));
      try (Stream<Path> s = Files.list(libDir)) {
        for (Path j : (Iterable<Path>) s.filter(p -> p.toString().endsWith(".jar"))::iterator) {
          Files.createSymbolicLink(jars.resolve(j.getFileName()), j);
        }
      }
      Files.createDirectories(dir.resolve("spark-conf"));
      Files.createDirectories(dir.resolve("logs"));
    } catch (IOException e) {
      throw new UncheckedIOException("cannot lay out SPARK_HOME under " + dir, e);
    }
    int port = freePort();
    masterUrl = "spark://127.0.0.1:" + port;
    Path masterLog = dir.resolve("logs/master.log");
    launch("master", masterLog, List.of("-Xmx256m"), "org.apache.spark.deploy.master.Master",
        List.of("--host", "127.0.0.1", "--port", String.valueOf(port), "--webui-port", "0"));
    await("the master to be elected leader", () -> contains(masterLog,
        "I have been elected leader"), processes.get(0), masterLog);
    for (int i = 0; i < nWorkers; i++) {
      Path work = dir.resolve("work-" + i);
      workDirs.add(work);
      Path log = dir.resolve("logs/worker-" + i + ".log");
      Process w = launch("worker-" + i, log, List.of("-Xmx256m"),
          "org.apache.spark.deploy.worker.Worker",
          List.of("--host", "127.0.0.1", "--port", "0", "--webui-port", "0", "--cores",
              String.valueOf(cores), "--memory", memory, "--work-dir", work.toString(),
              masterUrl));
      workers.add(w);
      await("worker " + i + " to register with the master", () -> contains(log,
          "Successfully registered with master"), w, log);
    }
    LOG.info("standalone cluster {} with {} workers up in {} ms (SPARK_HOME {})", masterUrl,
        nWorkers, (System.nanoTime() - t0) / 1_000_000, sparkHome);
  }

  /** {@code spark://127.0.0.1:<port>}. */
  public String masterUrl() {
    return masterUrl;
  }

  /** The environment every process of this cluster runs with (SPARK_HOME and friends). */
  public Map<String, String> env() {
    return Map.copyOf(env);
  }

  /** Each worker's work directory: {@code <app id>/<executor id>/stderr} for each executor. */
  public List<Path> workDirs() {
    return List.copyOf(workDirs);
  }

  /** The stderr of every executor any worker has launched, for every application. */
  public List<Path> executorLogs() {
    List<Path> out = new ArrayList<>();
    for (Path w : workDirs) {
      if (!Files.isDirectory(w)) {
        continue;
      }
      try (Stream<Path> s = Files.find(w, 3, (p, a) -> p.getFileName().toString()
          .equals("stderr"))) {
        s.forEach(out::add);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    out.sort(Comparator.naturalOrder());
    return out;
  }

  /** The executor JVMs running now (children of the workers). */
  public List<ProcessHandle> executors() {
    return workers.stream().flatMap(Process::descendants)
        .filter(h -> h.isAlive() && EXECUTOR_COMMAND.matcher(h.info().commandLine().orElse(""))
            .find())
        .collect(Collectors.toList());
  }

  /** What a finished {@link #submit} left: exit code and the driver's stdout and stderr. */
  public record Submission(int exitCode, String stdout, String stderr, Duration wallTime) {}

  /**
   * Runs {@code org.apache.spark.deploy.SparkSubmit <args>} in a JVM of its own (the driver, in
   * client mode) in the working directory {@code cwd}, and waits for it. The caller passes
   * {@code --master} (this cluster's {@link #masterUrl()} or a local one), {@code --class}, the
   * application jar and its arguments; the Java 17 flags reach the driver and the executors
   * ({@code spark.executor.extraJavaOptions}) here.
   *
   * @param driverEnv extra environment for the driver (e.g. DJL_CACHE_DIR)
   */
  public Submission submit(Path cwd, List<String> args, Map<String, String> driverEnv,
      Duration timeout) {
    List<String> cmd = new ArrayList<>(javaCommand(List.of("-Xmx1g")));
    cmd.add("org.apache.spark.deploy.SparkSubmit");
    cmd.add("--conf");
    cmd.add("spark.executor.extraJavaOptions=" + String.join(" ", jvmFlags()));
    cmd.addAll(args);
    String name = "submit-" + System.nanoTime();
    Path out = dir.resolve("logs/" + name + ".out");
    Path err = dir.resolve("logs/" + name + ".err");
    ProcessBuilder pb = new ProcessBuilder(cmd).directory(cwd.toFile())
        .redirectOutput(out.toFile()).redirectError(err.toFile());
    pb.environment().putAll(env);
    pb.environment().putAll(driverEnv);
    long t0 = System.nanoTime();
    Process p = start(pb);
    try {
      if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
        destroyTree(p);
        throw new IllegalStateException("spark-submit did not finish within " + timeout
            + "; its stderr ends:\n" + tail(err, 60));
      }
      return new Submission(p.exitValue(), Files.readString(out), Files.readString(err),
          Duration.ofNanos(System.nanoTime() - t0));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted", e);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } finally {
      destroyTree(p);
    }
  }

  /** Stops every process this cluster started (and their children); safe to call twice. */
  @Override
  public synchronized void close() {
    if (closed) {
      return;
    }
    closed = true;
    try {
      Runtime.getRuntime().removeShutdownHook(shutdownHook);
    } catch (IllegalStateException alreadyShuttingDown) {
      // close() runs from the hook itself
    }
    // Newest first: the driver, then the workers (whose executors are their children), then
    // the master.
    List<Process> all = new ArrayList<>(processes);
    java.util.Collections.reverse(all);
    for (Process p : all) {
      destroyTree(p);
    }
    LOG.info("standalone cluster {} stopped", masterUrl);
  }

  /**
   * The JVM flags Spark 3.5 needs on Java 17: {@code -Dlt.spark.jvm.flags} (surefire passes
   * pom.xml's {@code lt.jvm.flags}), else read from pom.xml.
   */
  public static List<String> jvmFlags() {
    String flags = System.getProperty("lt.spark.jvm.flags");
    if (flags == null || flags.isBlank()) {
      try {
        Matcher m = Pattern.compile("<lt\\.jvm\\.flags>(.*?)</lt\\.jvm\\.flags>")
            .matcher(Files.readString(Path.of("pom.xml")));
        if (!m.find()) {
          throw new IllegalStateException("no lt.jvm.flags in pom.xml");
        }
        flags = m.group(1);
      } catch (IOException e) {
        throw new UncheckedIOException("cannot read pom.xml for lt.jvm.flags", e);
      }
    }
    return Arrays.stream(flags.trim().split("\\s+")).toList();
  }

  private Process launch(String name, Path log, List<String> heap, String mainClass,
      List<String> args) {
    List<String> cmd = new ArrayList<>(javaCommand(heap));
    cmd.add(mainClass);
    cmd.addAll(args);
    ProcessBuilder pb = new ProcessBuilder(cmd).directory(dir.toFile())
        .redirectErrorStream(true).redirectOutput(log.toFile());
    pb.environment().putAll(env);
    LOG.info("starting {}: {}", name, String.join(" ", args));
    return start(pb);
  }

  private List<String> javaCommand(List<String> heap) {
    List<String> cmd = new ArrayList<>();
    cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    cmd.addAll(heap);
    cmd.addAll(jvmFlags());
    cmd.add("-cp");
    cmd.add(sparkHome.resolve("jars") + File.separator + "*");
    return cmd;
  }

  private synchronized Process start(ProcessBuilder pb) {
    if (closed) {
      throw new IllegalStateException("the cluster is stopped");
    }
    try {
      Process p = pb.start();
      processes.add(p);
      return p;
    } catch (IOException e) {
      throw new UncheckedIOException("cannot start " + pb.command().get(0), e);
    }
  }

  /** SIGTERM to the process and its descendants, then SIGKILL to whatever is left after 5 s. */
  private static void destroyTree(Process p) {
    // Collected before the parent goes: orphans would leave its descendants() list.
    List<ProcessHandle> tree = new ArrayList<>(p.descendants().toList());
    tree.add(p.toHandle());
    tree.forEach(ProcessHandle::destroy);
    long deadline = System.currentTimeMillis() + 5_000;
    for (ProcessHandle h : tree) {
      try {
        h.onExit().get(Math.max(1, deadline - System.currentTimeMillis()),
            TimeUnit.MILLISECONDS);
      } catch (Exception e) {
        // still running: killed below
      }
    }
    for (ProcessHandle h : tree) {
      if (h.isAlive()) {
        h.destroyForcibly();
      }
    }
  }

  private void await(String what, BooleanSupplier done, Process p, Path log) {
    long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
    while (!done.getAsBoolean()) {
      if (!p.isAlive()) {
        throw new IllegalStateException("waiting for " + what + ": the process exited with "
            + p.exitValue() + "; its log ends:\n" + tail(log, 40));
      }
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException("waiting for " + what + ": nothing after "
            + START_TIMEOUT + "; the log ends:\n" + tail(log, 40));
      }
      sleep(200);
    }
  }

  static boolean contains(Path log, String text) {
    try {
      return Files.exists(log) && Files.readString(log, StandardCharsets.UTF_8).contains(text);
    } catch (IOException e) {
      return false;
    }
  }

  static String tail(Path log, int lines) {
    try {
      List<String> all = Files.readAllLines(log);
      return String.join("\n", all.subList(Math.max(0, all.size() - lines), all.size()));
    } catch (IOException e) {
      return "(cannot read " + log + ": " + e + ")";
    }
  }

  private static int freePort() {
    try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      return s.getLocalPort();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted", e);
    }
  }
}
