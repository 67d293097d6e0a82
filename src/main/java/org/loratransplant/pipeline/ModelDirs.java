package org.loratransplant.pipeline;

import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Pattern;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.SparkEnv;
import org.apache.spark.SparkFiles;
import org.apache.spark.deploy.SparkHadoopUtil;
import org.apache.spark.sql.SparkSession;
import org.loratransplant.spark.SparkSessions;
import scala.Option;

/**
 * Where a model or adapter directory named in the settings is on this machine. The same string
 * ships to every executor and each JVM resolves it here:
 *
 * <ul>
 *   <li>a URI of a Hadoop file system ({@code s3a://}, {@code hdfs://}, ...): copied once per
 *       machine into the {@link ModelDirCache} (root: system property {@code lt.model-cache},
 *       else the environment variable {@code LT_MODEL_CACHE}, else
 *       {@code <java.io.tmpdir>/lt-model-cache-<user>}) and loaded from there;
 *   <li>{@code file:///...} or an absolute path: used directly (it must exist on every machine);
 *   <li>a relative path: looked up in Spark's files directory first (where
 *       {@code spark-submit --archives models.tgz#m} unpacks {@code m/}: the driver's
 *       {@code SparkFiles} root, an executor's working directory), then in the working directory.
 * </ul>
 */
public final class ModelDirs {
  private static final Pattern URI_SCHEME = Pattern.compile("^[A-Za-z][A-Za-z0-9+.-]*://.*");
  private static volatile ModelDirCache cache;

  private ModelDirs() {}

  /** True for a URI of a remote (non-{@code file:}) file system. */
  public static boolean isRemote(String dir) {
    return URI_SCHEME.matcher(dir).matches() && !dir.regionMatches(true, 0, "file:", 0, 5);
  }

  /** The local directory for {@code dir}, fetching a remote one into the cache first. */
  public static Path local(String dir) {
    if (isRemote(dir)) {
      return cache().get(dir, hadoopConf());
    }
    if (URI_SCHEME.matcher(dir).matches()) {
      return Path.of(URI.create(dir));
    }
    Path p = Path.of(dir);
    if (p.isAbsolute()) {
      return p;
    }
    Path files = sparkFilesRoot();
    if (files != null && Files.exists(files.resolve(p))) {
      return files.resolve(p).normalize();
    }
    return p;
  }

  /**
   * The form of a settings path that means the same directory on the driver and on every
   * executor: a URI as written; a relative path that exists only in the driver's Spark files
   * directory ({@code --archives}, {@code --files}) stays relative, since each executor has its
   * own copy in its working directory; any other local path becomes absolute (executors on a
   * cluster resolve relative paths in their own working directory).
   */
  public static String shippable(String path) {
    if (path.isEmpty() || URI_SCHEME.matcher(path).matches()) {
      return path;
    }
    Path p = Path.of(path);
    Path files = sparkFilesRoot();
    if (!p.isAbsolute() && !Files.exists(p) && files != null && Files.exists(files.resolve(p))) {
      return path;
    }
    return p.toAbsolutePath().normalize().toString();
  }

  /** The cache this JVM uses for remote directories. */
  public static ModelDirCache cache() {
    ModelDirCache c = cache;
    if (c == null) {
      synchronized (ModelDirs.class) {
        if (cache == null) {
          cache = new ModelDirCache(ModelDirCache.defaultRoot());
        }
        c = cache;
      }
    }
    return c;
  }

  /**
   * The Hadoop settings for reading a remote directory: a running session's (the driver, or
   * local mode, where tests add S3 settings to it at run time), else the executor's
   * ({@code spark.hadoop.*} of the conf the driver shipped), else Hadoop's defaults with our S3A
   * timeouts.
   */
  static Configuration hadoopConf() {
    Option<SparkSession> s = SparkSession.getDefaultSession();
    if (s.isDefined() && !s.get().sparkContext().isStopped()) {
      return s.get().sparkContext().hadoopConfiguration();
    }
    SparkEnv env = SparkEnv.get();
    if (env != null) {
      return SparkHadoopUtil.get().newConfiguration(env.conf());
    }
    Configuration c = new Configuration();
    SparkSessions.S3A_TIMEOUTS.forEach(c::setIfUnset);
    return c;
  }

  /** Spark's files directory in this JVM, or null without a running SparkEnv. */
  private static Path sparkFilesRoot() {
    if (SparkEnv.get() == null) {
      return null;
    }
    try {
      return Path.of(SparkFiles.getRootDirectory()).toAbsolutePath();
    } catch (RuntimeException e) {
      return null;
    }
  }
}
