package org.loratransplant.pipeline;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.UUID;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SaveMode;
import org.apache.spark.sql.SparkSession;
import org.loratransplant.table.Tables;

/**
 * Where a run's stage outputs live (a local path or {@code s3a://}) and how they are committed:
 * a stage writes to a fresh temporary directory, renames it into place, then writes the marker
 * {@code _LT_COMPLETE} holding the stage's config hash. A directory without the marker (a killed
 * run) is never read and is replaced on the next run; a marker with another hash means the
 * output belongs to different settings.
 *
 * <p>Serializable, so that a Spark task can commit its own outputs (the fleet trains each
 * adapter's target LoRA in a task): a copy carries the driver's Hadoop settings and offers the
 * file operations only; tables are read and written on the driver.
 */
public final class StageStore implements java.io.Serializable {
  private static final long serialVersionUID = 1L;
  public static final String MARKER = "_LT_COMPLETE";
  /** The driver's session; null in a copy deserialized on an executor. */
  private final transient SparkSession spark;
  /** The Hadoop settings a deserialized copy uses (the driver's, when it was serialized). */
  private transient Configuration shipped;
  private final String root;
  /** Set once a write check of a local root passed (a store writes many times). */
  private volatile boolean writable;

  public StageStore(SparkSession spark, String root) {
    this(spark, null, root);
  }

  private StageStore(SparkSession spark, Configuration shipped, String root) {
    this.spark = spark;
    this.shipped = shipped;
    this.root = root.endsWith("/") ? root.substring(0, root.length() - 1) : root;
  }

  private void writeObject(java.io.ObjectOutputStream out) throws IOException {
    out.defaultWriteObject();
    conf().write(out);
  }

  private void readObject(java.io.ObjectInputStream in) throws IOException,
      ClassNotFoundException {
    in.defaultReadObject();
    shipped = new Configuration(false);
    shipped.readFields(in);
  }

  /** The session, for the table operations a copy on an executor cannot do. */
  private SparkSession spark() {
    if (spark == null) {
      throw new IllegalStateException("store " + root + ": tables are read and written on the "
          + "driver, not in a task");
    }
    return spark;
  }

  public String root() {
    return root;
  }

  public String path(String name) {
    return root + "/" + name;
  }

  public String path(Tables t) {
    return path(t.tableName());
  }

  private FileSystem fs(Path p) {
    Configuration conf = conf();
    try {
      return p.getFileSystem(conf);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot reach " + p + endpointOf(conf, p) + ": "
          + e.getMessage(), e);
    }
  }

  /**
   * " (S3A endpoint URL)" for an {@code s3a://} path (the bucket's own endpoint setting, else
   * the global one, else AWS), so an error says which server did not answer; "" otherwise.
   */
  public static String endpointOf(Configuration conf, Path p) {
    if (!"s3a".equals(p.toUri().getScheme())) {
      return "";
    }
    String bucket = p.toUri().getHost();
    String endpoint = conf.get("fs.s3a.bucket." + bucket + ".endpoint",
        conf.get("fs.s3a.endpoint", "AWS default"));
    return " (S3A endpoint " + endpoint + ")";
  }

  /** The hash recorded by a complete output, or null if there is none (or it is incomplete). */
  public String completedHash(String name) {
    Path marker = new Path(path(name), MARKER);
    try {
      FileSystem fs = fs(marker);
      if (!fs.exists(marker)) {
        return null;
      }
      try (FSDataInputStream in = fs.open(marker)) {
        return new String(in.readAllBytes(), StandardCharsets.UTF_8).strip();
      }
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read " + marker + endpointOf(conf(), marker) + ": "
          + e.getMessage(), e);
    }
  }

  public boolean exists(String name) {
    Path p = new Path(path(name));
    try {
      return fs(p).exists(p);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot reach " + p + endpointOf(conf(), p) + ": "
          + e.getMessage(), e);
    }
  }

  private Configuration conf() {
    return spark != null ? spark.sparkContext().hadoopConfiguration() : shipped;
  }

  /**
   * Refuses a local run directory that cannot be written, with a message that says so: without
   * this a read-only directory surfaced as "File .../_tmp-run-... does not exist" from deep in a
   * copy. The nearest existing ancestor of the root must be a directory in which a file can be
   * created (tried once: permission bits say nothing for root or a read-only mount). Object
   * stores are not probed: their errors already name the refused request.
   */
  public void checkWritable() {
    if (writable) {
      return;
    }
    Path p = new Path(root);
    String scheme = p.toUri().getScheme();
    if (scheme != null && !scheme.equals("file")) {
      writable = true;
      return;
    }
    java.nio.file.Path dir = java.nio.file.Path.of(p.toUri().getPath());
    while (dir != null && !java.nio.file.Files.exists(dir)) {
      dir = dir.getParent();
    }
    if (dir == null || !java.nio.file.Files.isDirectory(dir)) {
      throw new UncheckedIOException(new IOException("run directory " + root + " cannot be "
          + "created: " + dir + " is not a directory"));
    }
    try {
      java.nio.file.Files.delete(java.nio.file.Files.createTempFile(dir, ".lt-write-probe",
          ".tmp"));
    } catch (IOException e) {
      throw new UncheckedIOException("run directory " + root + " is read-only: cannot write in "
          + dir + " (" + e + "); give a writable lt.titok.out / lt.compare.out", e);
    }
    writable = true;
  }

  /** Writes {@code df} as the table, replacing whatever was there, then marks it complete. */
  public void commit(Tables table, Dataset<Row> df, String hash, String... partitionBy) {
    checkWritable();
    table.check(df);
    String tmp = path("_tmp-" + table.tableName() + "-" + UUID.randomUUID());
    var writer = df.select(columns(table)).write().mode(SaveMode.ErrorIfExists);
    if (partitionBy.length > 0) {
      writer = writer.partitionBy(partitionBy);
    }
    writer.parquet(tmp);
    moveIntoPlace(tmp, table.tableName(), hash);
  }

  /** Marks a directory that a stage filled by other means (e.g. an adapter) complete. */
  public void moveIntoPlace(String tmp, String name, String hash) {
    Path src = new Path(tmp);
    Path dst = new Path(path(name));
    try {
      FileSystem fs = fs(dst);
      if (fs.exists(dst)) {
        fs.delete(dst, true);
      }
      if (!fs.rename(src, dst)) {
        throw new IOException("rename " + src + " -> " + dst + " failed");
      }
      try (FSDataOutputStream out = fs.create(new Path(dst, MARKER), true)) {
        out.write((hash + "\n").getBytes(StandardCharsets.UTF_8));
      }
    } catch (IOException e) {
      throw new UncheckedIOException("cannot commit " + dst + ": " + e.getMessage(), e);
    }
  }

  /** Commits a directory written on this machine (an adapter) as output {@code name}. */
  public void commitLocalDirectory(java.nio.file.Path local, String name, String hash) {
    checkWritable();
    String tmp = path("_tmp-" + name + "-" + UUID.randomUUID());
    Path dst = new Path(tmp);
    try {
      fs(dst).copyFromLocalFile(false, true, new Path(local.toAbsolutePath().toUri()), dst);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot copy " + local + " to " + dst + ": "
          + e.getMessage(), e);
    }
    moveIntoPlace(tmp, name, hash);
  }

  /** A local directory holding output {@code name}: itself for local runs, else a copy. */
  public java.nio.file.Path localCopy(String name) {
    Path src = new Path(path(name));
    if ("file".equals(src.toUri().getScheme()) || src.toUri().getScheme() == null) {
      return java.nio.file.Path.of(src.toUri().getPath());
    }
    try {
      java.nio.file.Path dir = java.nio.file.Files.createTempDirectory("lt-" + name);
      java.nio.file.Path target = dir.resolve(name);
      fs(src).copyToLocalFile(false, src, new Path(target.toUri()), true);
      return target;
    } catch (IOException e) {
      throw new UncheckedIOException("cannot copy " + src + " here: " + e.getMessage(), e);
    }
  }

  /** Records that output {@code name} is complete for {@code hash}. */
  public void mark(String name, String hash) {
    checkWritable();
    Path marker = new Path(path(name), MARKER);
    try (FSDataOutputStream out = fs(marker).create(marker, true)) {
      out.write((hash + "\n").getBytes(StandardCharsets.UTF_8));
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write " + marker + ": " + e.getMessage(), e);
    }
  }

  /** Deletes an incomplete or stale output. */
  public void delete(String name) {
    Path p = new Path(path(name));
    try {
      fs(p).delete(p, true);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  public Dataset<Row> read(Tables table) {
    String hash = completedHash(table.tableName());
    if (hash == null) {
      throw new IllegalStateException("table " + table.tableName() + " at " + path(table)
          + " is not complete: run its stage first");
    }
    Dataset<Row> df = spark().read().parquet(path(table));
    table.check(df);
    return df;
  }

  /** Writes a small text file (summaries, resolved settings) atomically enough: create+close. */
  public void writeText(String name, String text) {
    checkWritable();
    Path p = new Path(path(name));
    try (FSDataOutputStream out = fs(p).create(p, true)) {
      out.write(text.getBytes(StandardCharsets.UTF_8));
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write " + p + ": " + e.getMessage(), e);
    }
  }

  /** Writes a small file (a report, a plot): to a temporary name, then renamed over the old. */
  public void writeBytes(String name, byte[] bytes) {
    checkWritable();
    Path p = new Path(path(name));
    Path tmp = new Path(path("_tmp-" + UUID.randomUUID() + "-" + p.getName()));
    try {
      FileSystem fs = fs(p);
      try (FSDataOutputStream out = fs.create(tmp, true)) {
        out.write(bytes);
      }
      if (fs.exists(p)) {
        fs.delete(p, false);
      }
      if (!fs.rename(tmp, p)) {
        throw new IOException("rename " + tmp + " -> " + p + " failed");
      }
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write " + p + ": " + e.getMessage(), e);
    }
  }

  /** A small text file's content, or null when it does not exist. */
  public String readText(String name) {
    Path p = new Path(path(name));
    try {
      FileSystem fs = fs(p);
      if (!fs.exists(p)) {
        return null;
      }
      try (FSDataInputStream in = fs.open(p)) {
        return new String(in.readAllBytes(), StandardCharsets.UTF_8);
      }
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read " + p + ": " + e.getMessage(), e);
    }
  }

  /** A store for a sub-directory of this one (a method's or a cell's own outputs). */
  public StageStore child(String name) {
    return new StageStore(spark, shipped, path(name));
  }

  private static org.apache.spark.sql.Column[] columns(Tables t) {
    return java.util.Arrays.stream(t.schema().fieldNames()).map(org.apache.spark.sql.functions::col)
        .toArray(org.apache.spark.sql.Column[]::new);
  }
}
