package org.loratransplant.pipeline;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.management.ManagementFactory;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.UUID;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One writer per run directory: the file {@value #FILE} in it names the owner (a random token,
 * host, pid, start time) and a heartbeat a daemon thread rewrites every
 * {@link Settings#heartbeatEvery()}. A second job on the same directory is refused with a message
 * naming the owner and the age of its heartbeat; a lock whose heartbeat is older than
 * {@link Settings#staleAfter()} (its owner was killed without a chance to release it) is taken
 * over, with a warning. Released by {@link #close()} and, failing that, by a JVM shutdown hook.
 *
 * <p>How atomic the create is depends on the store:
 *
 * <ul>
 *   <li>Local paths ({@code file:} or no scheme): {@code O_CREAT|O_EXCL} through
 *       {@link StandardOpenOption#CREATE_NEW}, atomic on a local file system. (Hadoop's
 *       {@code LocalFileSystem.create(path, false)} is not: it checks, then opens.)
 *   <li>Other schemes ({@code s3a://}): {@code FileSystem.create(path, overwrite = false)}. In
 *       Hadoop 3.3.4 S3A implements that as a {@code HEAD}/{@code LIST} existence check followed
 *       by an unconditional {@code PUT} when the stream closes: two creators whose checks both run
 *       before either {@code PUT} lands both "succeed", and the later {@code PUT} wins (S3 has
 *       been strongly read-after-write consistent since December 2020, but 3.3.4 sends no
 *       {@code If-None-Match} conditional write). So each creator writes its own token, waits
 *       {@link Settings#confirmDelay()}, and reads the file back: only the one whose token is
 *       there holds the lock. This is sound as long as the competing {@code PUT}s land within the
 *       delay of each other, which holds for processes started at nearly the same moment (the
 *       window from check to {@code PUT} is one small request); it is not a consensus protocol,
 *       and two writers could still both proceed if one stalls for longer than the delay between
 *       its check and its {@code PUT}. Takeover of a stale lock is an overwrite followed by the
 *       same confirmation, on every store.
 * </ul>
 *
 * <p>Staleness is judged from the heartbeat time written in the file against this machine's
 * clock, so hosts sharing a run directory need clocks within a small fraction of
 * {@code staleAfter} of each other.
 */
public final class RunLock implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(RunLock.class);
  /** The lock file's name in the run directory. */
  public static final String FILE = "_LT_LOCK";
  /** The Spark conf key (also a {@code -D} system property) for the staleness, e.g. 10min. */
  public static final String STALE_AFTER_KEY = "spark.lt.run-lock.stale-after";

  /**
   * @param staleAfter a heartbeat older than this marks a dead owner whose lock may be taken
   * @param heartbeatEvery how often the owner rewrites its heartbeat (well below staleAfter)
   * @param confirmDelay wait between writing the token and reading it back on non-atomic stores
   */
  public record Settings(Duration staleAfter, Duration heartbeatEvery, Duration confirmDelay) {
    public Settings {
      Objects.requireNonNull(staleAfter, "staleAfter");
      Objects.requireNonNull(heartbeatEvery, "heartbeatEvery");
      Objects.requireNonNull(confirmDelay, "confirmDelay");
      if (heartbeatEvery.isZero() || heartbeatEvery.isNegative()
          || heartbeatEvery.compareTo(staleAfter) >= 0) {
        throw new IllegalArgumentException("run lock: heartbeat every " + heartbeatEvery
            + " must be positive and shorter than stale-after " + staleAfter);
      }
    }

    /** Stale after 10 minutes, a heartbeat every minute, 2 s to confirm on object stores. */
    public static Settings defaults() {
      return of(Duration.ofMinutes(10));
    }

    /** The given staleness, a heartbeat every tenth of it, 2 s to confirm. */
    public static Settings of(Duration staleAfter) {
      return new Settings(staleAfter, staleAfter.dividedBy(10), Duration.ofSeconds(2));
    }
  }

  /** What the lock file says: who holds it and when it last proved to be alive. */
  public record Owner(String token, String host, long pid, Instant started, Instant heartbeat) {
    String render() {
      Map<String, String> m = new LinkedHashMap<>();
      m.put("token", token);
      m.put("host", host);
      m.put("pid", String.valueOf(pid));
      m.put("started", started.toString());
      m.put("heartbeat", heartbeat.toString());
      StringBuilder sb = new StringBuilder();
      m.forEach((k, v) -> sb.append(k).append('=').append(v).append('\n'));
      // Every version of the file has the same length (the parser skips the blank padding): an
      // object-store reader takes the length from its HEAD and reads that many bytes from
      // whatever version its GET finds, so a length that changed between the two would cut
      // the text short or leave it ragged.
      while (sb.length() < RENDERED_LENGTH) {
        sb.append(sb.length() % 64 == 63 ? '\n' : ' ');
      }
      return sb.toString();
    }

    /** The padded length of {@link #render()} (an owner needs about 200 characters). */
    static final int RENDERED_LENGTH = 1024;

    /** The owner in a lock file's text, or null when it is empty or half written. */
    static Owner parse(String text) {
      Map<String, String> m = new LinkedHashMap<>();
      for (String line : text.split("\n")) {
        int eq = line.indexOf('=');
        if (eq > 0) {
          m.put(line.substring(0, eq).strip(), line.substring(eq + 1).strip());
        }
      }
      try {
        return new Owner(Objects.requireNonNull(m.get("token")), m.getOrDefault("host", "?"),
            Long.parseLong(m.getOrDefault("pid", "-1")), Instant.parse(m.get("started")),
            Instant.parse(m.get("heartbeat")));
      } catch (RuntimeException e) {
        return null;
      }
    }

    /** "pid 123 on host h (started ..., last heartbeat 42 s ago)". */
    String describe(Instant now) {
      return "pid " + pid + " on host " + host + " (started " + started + ", last heartbeat "
          + Duration.between(heartbeat, now).toSeconds() + " s ago)";
    }
  }

  /** Thrown when another live job holds the run directory. */
  public static final class HeldException extends IllegalStateException {
    private final Owner owner;

    HeldException(String message, Owner owner) {
      super(message);
      this.owner = owner;
    }

    /** The holder, or null when its lock file could not be read (it is being written). */
    public Owner owner() {
      return owner;
    }
  }

  private final LockFile file;
  private final String runDir;
  private final Settings settings;
  private final Clock clock;
  private final Owner owner;
  private final ScheduledExecutorService heartbeat;
  private final Thread shutdownHook;
  private volatile boolean lost;
  private boolean closed;

  private RunLock(LockFile file, String runDir, Settings settings, Clock clock, Owner owner) {
    this.file = file;
    this.runDir = runDir;
    this.settings = settings;
    this.clock = clock;
    this.owner = owner;
    this.heartbeat = Executors.newSingleThreadScheduledExecutor(r -> {
      Thread t = new Thread(r, "lt-run-lock-heartbeat");
      t.setDaemon(true);
      return t;
    });
    long every = settings.heartbeatEvery().toMillis();
    heartbeat.scheduleWithFixedDelay(this::beat, every, every, TimeUnit.MILLISECONDS);
    this.shutdownHook = new Thread(this::releaseQuietly, "lt-run-lock-release");
    Runtime.getRuntime().addShutdownHook(shutdownHook);
  }

  /** Acquires the lock of {@code runDir} with the default settings and the system clock. */
  public static RunLock acquire(Configuration conf, String runDir) {
    return acquire(conf, runDir, Settings.defaults(), Clock.systemUTC());
  }

  /**
   * Acquires the lock of {@code runDir} (created if missing).
   *
   * @throws HeldException when a job whose heartbeat is fresh holds it
   * @throws UncheckedIOException when the directory cannot be reached or written (read-only)
   */
  public static RunLock acquire(Configuration conf, String runDir, Settings settings,
      Clock clock) {
    LockFile file = LockFile.of(conf, runDir);
    boolean locked = false;
    try {
      RunLock lock = acquire(file, runDir, settings, clock);
      locked = true;
      return lock;
    } finally {
      if (!locked) {
        file.close();
      }
    }
  }

  private static RunLock acquire(LockFile file, String runDir, Settings settings, Clock clock) {
    Instant now = clock.instant();
    Owner me = new Owner(UUID.randomUUID().toString(), host(), ProcessHandle.current().pid(),
        now, now);
    try {
      boolean tookOver = false;
      if (!file.createNew(me.render())) {
        String text = file.read();
        Owner holder = text == null ? null : Owner.parse(text);
        if (text == null) {
          // Released between our create and our read: try once more, then give up.
          if (!file.createNew(me.render())) {
            throw held(file, null, clock);
          }
        } else if (holder == null || !isStale(holder, settings, clock)) {
          throw held(file, holder, clock);
        } else {
          LOG.warn("taking over the stale lock {} of {}", file, holder.describe(clock.instant()));
          file.overwrite(me.render());
          tookOver = true;
        }
      }
      // A non-atomic create, or a takeover (an overwrite another job may race), is confirmed by
      // reading our token back after the other writers have had time to land.
      if (!file.atomic() || tookOver) {
        sleep(settings.confirmDelay());
      }
      String back = file.read();
      Owner current = back == null ? null : Owner.parse(back);
      if (current == null || !current.token().equals(me.token())) {
        throw held(file, current, clock);
      }
    } catch (IOException e) {
      throw file.failure("lock", e);
    }
    LOG.info("locked {} ({})", runDir, file);
    return new RunLock(file, runDir, settings, clock, me);
  }

  /** The settings a job uses: the default, or {@value #STALE_AFTER_KEY} from the Spark conf. */
  public static Settings settingsFrom(org.apache.spark.SparkConf conf) {
    if (!conf.contains(STALE_AFTER_KEY)) {
      return Settings.defaults();
    }
    return Settings.of(Duration.ofMillis(conf.getTimeAsMs(STALE_AFTER_KEY)));
  }

  /** Acquires the lock of a job's run directory with the session's settings. */
  public static RunLock acquire(org.apache.spark.sql.SparkSession spark, String runDir) {
    return acquire(spark.sparkContext().hadoopConfiguration(), runDir,
        settingsFrom(spark.sparkContext().getConf()), Clock.systemUTC());
  }

  private static boolean isStale(Owner o, Settings s, Clock clock) {
    return Duration.between(o.heartbeat(), clock.instant()).compareTo(s.staleAfter()) > 0;
  }

  private static HeldException held(LockFile file, Owner o, Clock clock) {
    String who = o == null ? "another job (its lock file is being written)"
        : o.describe(clock.instant());
    return new HeldException(file.runDir() + " is in use by " + who + "; wait for it to end, "
        + "or use another run directory. If that job is dead, its lock " + file + " is taken "
        + "over once its heartbeat is older than the staleness (" + STALE_AFTER_KEY
        + "), or delete the file by hand.", o);
  }

  /** The holder's description (token, host, pid, start). */
  public Owner owner() {
    return owner;
  }

  /** False once a heartbeat found another owner's token in the file (we were taken over). */
  public boolean held() {
    return !lost && !closed;
  }

  /** One heartbeat: rewrites the time while the file holds our token (tests call it directly). */
  void beat() {
    try {
      String text = file.read();
      Owner o = text == null ? null : Owner.parse(text);
      if (o == null || !o.token().equals(owner.token())) {
        lost = true;
        LOG.error("lost the lock of {}: it now says {}", runDir, o == null ? "nothing"
            : o.describe(clock.instant()));
        heartbeat.shutdown();
        return;
      }
      file.overwrite(new Owner(owner.token(), owner.host(), owner.pid(), owner.started(),
          clock.instant()).render());
    } catch (IOException | RuntimeException e) {
      LOG.warn("run lock heartbeat on {} failed: {}", file, e.getMessage());
    }
  }

  /** Stops the heartbeat and deletes the lock file if it still holds our token. */
  @Override
  public synchronized void close() {
    if (closed) {
      return;
    }
    closed = true;
    heartbeat.shutdownNow();
    try {
      heartbeat.awaitTermination(5, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    try {
      Runtime.getRuntime().removeShutdownHook(shutdownHook);
    } catch (IllegalStateException e) {
      // Already shutting down: the hook is this call.
    }
    try {
      String text = file.read();
      Owner o = text == null ? null : Owner.parse(text);
      if (o != null && o.token().equals(owner.token())) {
        file.delete();
        LOG.info("released {}", file);
      } else {
        LOG.warn("not releasing {}: it is no longer ours", file);
      }
    } catch (IOException e) {
      throw file.failure("release", e);
    } finally {
      file.close();
    }
  }

  private void releaseQuietly() {
    try {
      close();
    } catch (RuntimeException e) {
      System.err.println("lt: could not release " + file + ": " + e.getMessage());
    }
  }

  private static String host() {
    try {
      return InetAddress.getLocalHost().getHostName();
    } catch (IOException e) {
      return ManagementFactory.getRuntimeMXBean().getName();
    }
  }

  private static void sleep(Duration d) {
    if (d.isZero()) {
      return;
    }
    try {
      Thread.sleep(d.toMillis());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while confirming the run lock", e);
    }
  }

  /** The lock file on a local disk (atomic create) or any Hadoop file system. */
  private abstract static class LockFile {
    private final String runDir;

    LockFile(String runDir) {
      this.runDir = runDir;
    }

    static LockFile of(Configuration conf, String runDir) {
      Path dir = new Path(runDir);
      String scheme = dir.toUri().getScheme();
      if (scheme == null || scheme.equals("file")) {
        return new Local(runDir, java.nio.file.Path.of(dir.toUri().getPath()));
      }
      try {
        return new Hadoop(runDir, lockFileSystem(conf, dir), dir,
            StageStore.endpointOf(conf, dir));
      } catch (IOException e) {
        throw new UncheckedIOException("cannot reach " + runDir + StageStore.endpointOf(conf,
            dir) + ": " + e.getMessage(), e);
      }
    }

    /**
     * A file system of its own for the lock file (closed with the lock): S3A's classic input
     * stream. Hadoop 3.4+'s analytics stream prefetches, which widened the window between its
     * HEAD and its version-pinned GET so much that a reader racing a rewrite failed eight tries
     * in a row; a lock file is one small GET and needs none of that.
     */
    private static FileSystem lockFileSystem(Configuration conf, Path dir) throws IOException {
      Configuration c = new Configuration(conf);
      c.set("fs.s3a.input.stream.type", "classic");
      // No version pinning: S3A's default sends the ETag its open saw as If-Match with the
      // GET, and fails the read (HTTP 412) when a heartbeat or a racing creator replaced the
      // object in between. Under steady rewrites on a loaded machine that lost eight tries in a
      // row (a CI run failed so). A PUT replaces the object whole and every version has the
      // same length (Owner#render), so the unpinned GET reads one whole version, old or new.
      c.set("fs.s3a.change.detection.mode", "none");
      return FileSystem.newInstance(dir.toUri(), c);
    }

    String runDir() {
      return runDir;
    }

    abstract boolean atomic();

    /** Creates the file with {@code text} unless it exists; false when it exists. */
    abstract boolean createNew(String text) throws IOException;

    /** The file's text, or null when there is none. */
    abstract String read() throws IOException;

    abstract void overwrite(String text) throws IOException;

    abstract void delete() throws IOException;

    /** Frees what reaching the store took (a file system instance of its own); never throws. */
    void close() {}

    /** Where the store is, for messages: " (S3A endpoint ...)" or "". */
    String where() {
      return "";
    }

    UncheckedIOException failure(String what, IOException e) {
      if (e instanceof AccessDeniedException || e instanceof org.apache.hadoop.security
          .AccessControlException) {
        return new UncheckedIOException("cannot " + what + " run directory " + runDir
            + ": it is read-only for this user (" + e.getMessage() + ")", e);
      }
      return new UncheckedIOException("cannot " + what + " run directory " + runDir + where()
          + ": " + e.getMessage(), e);
    }

    private static final class Local extends LockFile {
      private final java.nio.file.Path path;

      Local(String runDir, java.nio.file.Path dir) {
        super(runDir);
        this.path = dir.resolve(FILE);
      }

      @Override
      boolean atomic() {
        return true;
      }

      @Override
      boolean createNew(String text) throws IOException {
        Files.createDirectories(path.getParent());
        if (!Files.isWritable(path.getParent())) {
          throw new AccessDeniedException(path.getParent().toString());
        }
        try {
          Files.writeString(path, text, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
          return true;
        } catch (FileAlreadyExistsException e) {
          return false;
        }
      }

      @Override
      String read() throws IOException {
        try {
          return Files.readString(path);
        } catch (NoSuchFileException e) {
          return null;
        }
      }

      @Override
      void overwrite(String text) throws IOException {
        // Readers never see a half-written file: write beside it, then rename over it.
        java.nio.file.Path tmp = path.resolveSibling(FILE + "." + UUID.randomUUID() + ".tmp");
        Files.writeString(tmp, text);
        Files.move(tmp, path, StandardCopyOption.REPLACE_EXISTING,
            StandardCopyOption.ATOMIC_MOVE);
      }

      @Override
      void delete() throws IOException {
        Files.deleteIfExists(path);
      }

      @Override
      public String toString() {
        return path.toString();
      }
    }

    private static final class Hadoop extends LockFile {
      private final FileSystem fs;
      private final Path path;
      private final String where;

      Hadoop(String runDir, FileSystem fs, Path dir, String where) {
        super(runDir);
        this.fs = fs;
        this.path = new Path(dir, FILE);
        this.where = where;
      }

      @Override
      String where() {
        return where;
      }

      @Override
      boolean atomic() {
        return false;
      }

      @Override
      boolean createNew(String text) throws IOException {
        try (FSDataOutputStream out = fs.create(path, false)) {
          out.write(text.getBytes(StandardCharsets.UTF_8));
          return true;
        } catch (org.apache.hadoop.fs.FileAlreadyExistsException e) {
          return false;
        }
      }

      @Override
      String read() throws IOException {
        // The lock's file system reads unpinned (lockFileSystem), but should a store or a
        // Hadoop version still report that the object changed under the read (S3A's
        // RemoteFileChangedException, HTTP 412), the object is whole either way: read again.
        for (int attempt = 1; ; attempt++) {
          try (FSDataInputStream in = fs.open(path)) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
          } catch (java.io.FileNotFoundException e) {
            return null;
          } catch (IOException e) {
            if (!isChangedDuringRead(e) || attempt == READ_ATTEMPTS) {
              throw e;
            }
            LOG.debug("{} changed while being read (attempt {}): reading it again", path,
                attempt);
            sleep(Duration.ofMillis(20L * attempt));
          }
        }
      }

      private static final int READ_ATTEMPTS = 8;

      /**
       * The object changed under the read: S3A's RemoteFileChangedException (Hadoop 3.3;
       * matched by name, hadoop-aws may be absent), or the HTTP 412 "precondition failed" that
       * Hadoop 3.4's analytics-accelerator stream passes on as a plain IOException.
       */
      private static boolean isChangedDuringRead(IOException e) {
        for (Throwable t = e; t != null; t = t.getCause() == t ? null : t.getCause()) {
          for (Class<?> c = t.getClass(); c != null; c = c.getSuperclass()) {
            if (c.getName().equals("org.apache.hadoop.fs.s3a.RemoteFileChangedException")) {
              return true;
            }
          }
          String m = t.getMessage();
          if (m != null && (m.contains("Status Code: 412")
              || m.contains("preconditions you specified did not hold"))) {
            return true;
          }
        }
        return false;
      }

      @Override
      void overwrite(String text) throws IOException {
        // An object store's PUT replaces the object whole: readers see old or new.
        try (FSDataOutputStream out = fs.create(path, true)) {
          out.write(text.getBytes(StandardCharsets.UTF_8));
        }
      }

      @Override
      void delete() throws IOException {
        fs.delete(path, false);
      }

      @Override
      void close() {
        try {
          fs.close();
        } catch (IOException e) {
          LOG.warn("closing the lock's file system of {}: {}", path, e.getMessage());
        }
      }

      @Override
      public String toString() {
        return path.toString();
      }
    }
  }
}
