package org.loratransplant.testing;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.gaul.s3proxy.BlobStores;
import org.gaul.s3proxy.S3Proxy;
import org.gaul.s3proxy.auth.AuthenticationType;
import org.gaul.s3proxy.blobstore.BlobStore;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.loratransplant.spark.SparkSessions;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A real S3 API server for tests: S3Proxy 4.1.0 in this JVM on 127.0.0.1 (random port), objects
 * kept as plain files in a directory, one bucket.
 *
 * <p>The server starts on {@link #start()} or on first use (any method that needs its endpoint
 * or files) and stops on {@link #close()}; it is not restarted after that. As a plain object:
 * {@code try (S3TestServer s3 = new S3TestServer()) { ... }}. As a JUnit 5 extension:
 * {@code @RegisterExtension static final S3TestServer S3 = new S3TestServer();} runs one server
 * for the class, stopped after its last test (an instance field: one server per test method).
 *
 * <p>The bucket name is random unless given: Hadoop caches one S3A file system per bucket for
 * the life of the JVM, so a name reused by a later server would reach the earlier, dead one.
 */
public final class S3TestServer
    implements AutoCloseable, BeforeAllCallback, AfterAllCallback, BeforeEachCallback,
    AfterEachCallback {
  /** Access key the server accepts (AWS signature V2 or V4). */
  public static final String ACCESS_KEY = "lt-test-access";
  /** Secret key the server accepts. */
  public static final String SECRET_KEY = "lt-test-secret";

  private static final Logger LOG = LoggerFactory.getLogger(S3TestServer.class);
  private static final long START_TIMEOUT_MS = 10_000;

  private final String bucket;
  /** Where objects live; null until start when the server makes (and later deletes) a temp dir. */
  private Path baseDir;
  private final boolean ownsBaseDir;
  private BlobStore blobStore;
  private S3Proxy proxy;
  private String endpoint;
  private boolean closed;
  /** The JUnit context (class or test) whose before-callback started the server. */
  private String startedBy;

  /** A server with a random bucket name, keeping its objects in a temp dir deleted on close. */
  public S3TestServer() {
    this(null, "lt-test-" + UUID.randomUUID().toString().substring(0, 8));
  }

  /**
   * A server keeping its objects under {@code baseDir} (created if missing, left in place on
   * close), or in a temp dir deleted on close if {@code baseDir} is null.
   *
   * @param bucket the bucket to create (S3 rules: lower case, digits, '.', '-', 3-63 chars)
   */
  public S3TestServer(Path baseDir, String bucket) {
    if (!bucket.matches("[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")) {
      throw new IllegalArgumentException("not a valid S3 bucket name: " + bucket);
    }
    this.bucket = bucket;
    this.baseDir = baseDir;
    this.ownsBaseDir = baseDir == null;
  }

  /** Starts the server and creates the bucket; does nothing if it is running. */
  public synchronized S3TestServer start() {
    if (closed) {
      throw new IllegalStateException("S3TestServer for bucket " + bucket + " is closed");
    }
    if (proxy != null) {
      return this;
    }
    long t0 = System.nanoTime();
    try {
      baseDir = ownsBaseDir ? Files.createTempDirectory("lt-s3-")
          : Files.createDirectories(baseDir);
      Properties props = new Properties();
      props.setProperty("jclouds.filesystem.basedir", baseDir.toString());
      props.setProperty("jclouds.identity", ACCESS_KEY);
      props.setProperty("jclouds.credential", SECRET_KEY);
      blobStore = BlobStores.create("filesystem", props);
      proxy = S3Proxy.builder()
          .blobStore(blobStore)
          .endpoint(URI.create("http://127.0.0.1:0"))
          .awsAuthentication(AuthenticationType.AWS_V2_OR_V4, ACCESS_KEY, SECRET_KEY)
          // No graceful drain: S3A's pooled keep-alive connections would hold stop() ~2 s.
          .stopTimeout(0)
          .build();
      proxy.start();
      awaitStarted();
      endpoint = "http://127.0.0.1:" + proxy.getPort();
      blobStore.createContainer(bucket);
      LOG.info("S3TestServer {} bucket {} ready in {} ms", endpoint, bucket,
          (System.nanoTime() - t0) / 1_000_000);
      return this;
    } catch (Exception e) {
      try {
        close();
      } catch (RuntimeException cleanup) {
        e.addSuppressed(cleanup);
      }
      throw new IllegalStateException("S3Proxy did not start", e);
    }
  }

  /** The endpoint URL, {@code http://127.0.0.1:<port>}; starts the server if needed. */
  public String endpoint() {
    return start().endpoint;
  }

  /** The bucket created at start. */
  public String bucket() {
    return bucket;
  }

  public String accessKey() {
    return ACCESS_KEY;
  }

  public String secretKey() {
    return SECRET_KEY;
  }

  /** {@code s3a://<bucket>}. */
  public String bucketUri() {
    return "s3a://" + bucket;
  }

  /** {@code s3a://<bucket>/<path>}. */
  public String uri(String path) {
    return bucketUri() + "/" + (path.startsWith("/") ? path.substring(1) : path);
  }

  /**
   * Where the server keeps the bucket's objects on disk, one file per key: lets a test check that
   * data really went through S3 and not to a local path. Starts the server if needed.
   */
  public Path bucketDir() {
    return start().baseDir.resolve(bucket);
  }

  /**
   * The {@code spark.hadoop.fs.s3a.*} settings that reach this server, for a session about to be
   * created ({@link SparkSessions#configureS3a}); they apply to every bucket.
   */
  public Map<String, String> sparkConf() {
    Map<String, String> conf = new LinkedHashMap<>();
    SparkSessions.configureS3a(conf, endpoint(), ACCESS_KEY, SECRET_KEY);
    return conf;
  }

  /**
   * The same settings scoped to this server's bucket ({@code spark.hadoop.fs.s3a.bucket.<b>.*},
   * which S3A applies to that bucket only), so several servers can serve one Spark session.
   */
  public Map<String, String> sparkConfForBucket() {
    String global = "spark.hadoop.fs.s3a.";
    String scoped = global + "bucket." + bucket + ".";
    Map<String, String> conf = new LinkedHashMap<>();
    sparkConf().forEach((k, v) -> conf.put(scoped + k.substring(global.length()), v));
    return conf;
  }

  /**
   * Points {@code s3a://<bucket>} of a Hadoop configuration (a running session's
   * {@code sparkContext().hadoopConfiguration()}) at this server, with bucket-scoped settings.
   */
  public void configure(Configuration hadoop) {
    sparkConfForBucket().forEach((k, v) -> hadoop.set(k.substring("spark.hadoop.".length()), v));
  }

  /**
   * Uploads every file under the local directory {@code dir} through S3A to
   * {@code s3a://<bucket>/<prefix>/...}, as a user would (objects get real ETags and times), and
   * returns that URI.
   */
  public String putDirectory(Path dir, String prefix) {
    String uri = uri(prefix);
    Configuration conf = new Configuration();
    configure(conf);
    try (org.apache.hadoop.fs.FileSystem fs = org.apache.hadoop.fs.FileSystem.newInstance(
        URI.create(uri), conf);
        Stream<Path> files = Files.walk(dir)) {
      for (Path f : (Iterable<Path>) files.filter(Files::isRegularFile)::iterator) {
        fs.copyFromLocalFile(false, true, new org.apache.hadoop.fs.Path(f.toUri()),
            new org.apache.hadoop.fs.Path(uri + "/" + dir.relativize(f).toString()
                .replace('\\', '/')));
      }
    } catch (IOException e) {
      throw new UncheckedIOException("could not upload " + dir + " to " + uri, e);
    }
    return uri;
  }

  /** Stops the server and deletes the temp dir it made; safe to call twice. */
  @Override
  public synchronized void close() {
    closed = true;
    RuntimeException failure = null;
    try {
      if (proxy != null) {
        proxy.stop();
      }
    } catch (Exception e) {
      failure = new IllegalStateException("S3Proxy did not stop", e);
    }
    if (blobStore != null) {
      blobStore.close();
    }
    if (ownsBaseDir && baseDir != null) {
      deleteTree(baseDir);
      baseDir = null;
    }
    proxy = null;
    blobStore = null;
    endpoint = null;
    if (failure != null) {
      throw failure;
    }
  }

  @Override
  public void beforeAll(ExtensionContext context) {
    startFor(context);
  }

  @Override
  public void afterAll(ExtensionContext context) {
    closeFor(context);
  }

  @Override
  public void beforeEach(ExtensionContext context) {
    startFor(context);
  }

  @Override
  public void afterEach(ExtensionContext context) {
    closeFor(context);
  }

  /** Starts the server for this context unless it runs already (a static field's, for one). */
  private synchronized void startFor(ExtensionContext context) {
    if (proxy == null && !closed) {
      start();
      startedBy = context.getUniqueId();
    }
  }

  /** Stops the server when the context that started it ends (not a nested class's, say). */
  private synchronized void closeFor(ExtensionContext context) {
    if (context.getUniqueId().equals(startedBy)) {
      close();
    }
  }

  private void awaitStarted() throws InterruptedException {
    // Jetty may report STARTING for a moment after start() returns.
    long deadline = System.currentTimeMillis() + START_TIMEOUT_MS;
    while (!"STARTED".equals(proxy.getState())) {
      if (System.currentTimeMillis() > deadline) {
        throw new IllegalStateException("S3Proxy state after " + START_TIMEOUT_MS + " ms: "
            + proxy.getState());
      }
      Thread.sleep(10);
    }
  }

  private static void deleteTree(Path root) {
    try (Stream<Path> paths = Files.walk(root)) {
      for (Path p : (Iterable<Path>) paths.sorted(Comparator.reverseOrder())::iterator) {
        Files.deleteIfExists(p);
      }
    } catch (IOException e) {
      throw new UncheckedIOException("could not delete " + root, e);
    }
  }
}
