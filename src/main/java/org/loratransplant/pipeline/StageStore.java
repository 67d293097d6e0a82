package org.loratransplant.pipeline;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
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

  /** Whether the root is on this machine's filesystem (a path or {@code file:}). */
  public boolean isLocal() {
    String scheme = new Path(root).toUri().getScheme();
    return scheme == null || scheme.equals("file");
  }

  /** The root as a local path; only for {@link #isLocal} stores. */
  public java.nio.file.Path localRoot() {
    if (!isLocal()) {
      throw new IllegalStateException(root + " is not on this machine's filesystem");
    }
    return java.nio.file.Path.of(new Path(root).toUri().getPath());
  }

  /** The Hadoop filesystem of the root (for outputs a stage copies itself). */
  public FileSystem fileSystem() {
    return fs(new Path(root));
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
    if (table.partitionColumn() != null) {
      throw new IllegalArgumentException("table " + table.tableName() + " is written one "
          + table.partitionColumn() + " at a time: use commitPartition");
    }
    String tmp = tmpPath(table.tableName());
    var writer = df.select(columns(table)).write().mode(SaveMode.ErrorIfExists);
    if (partitionBy.length > 0) {
      writer = writer.partitionBy(partitionBy);
    }
    writer.parquet(tmp);
    moveIntoPlace(tmp, table.tableName(), hash);
  }

  /**
   * Writes the rows of one value of a partitioned table (e.g. {@code failed}, stage
   * {@code score}) as its sub-directory {@code column=value}, replacing the old one, and marks
   * that sub-directory complete; the other values' sub-directories stay as they are.
   */
  public void commitPartition(Tables table, String value, Dataset<Row> df, String hash) {
    checkWritable();
    table.check(df);
    String column = table.partitionColumn();
    String name = partitionName(table, value);
    String tmp = tmpPath(name);
    df.select(java.util.Arrays.stream(table.schema().fieldNames()).filter(c -> !c.equals(column))
        .map(org.apache.spark.sql.functions::col).toArray(org.apache.spark.sql.Column[]::new))
        .write().mode(SaveMode.ErrorIfExists).parquet(tmp);
    moveIntoPlace(tmp, name, hash);
  }

  /** The output name of one value of a partitioned table: {@code failed/stage=score}. */
  public static String partitionName(Tables table, String value) {
    if (table.partitionColumn() == null) {
      throw new IllegalArgumentException("table " + table.tableName() + " is not partitioned");
    }
    return table.tableName() + "/" + table.partitionColumn() + "=" + value;
  }

  /**
   * A fresh temporary directory for output {@code name}, after deleting the ones an earlier,
   * killed attempt left behind (a rerun otherwise leaves {@code _tmp-scored_tokens-...} beside
   * the committed table for good). Safe because one writer holds the run directory
   * ({@link RunLock}) and each output is written by one stage.
   */
  private String tmpPath(String name) {
    String prefix = "_tmp-" + name.replace('/', '-').replace('=', '-') + "-";
    deleteLeftovers(prefix + UUID_PATTERN);
    return path(prefix + UUID.randomUUID());
  }

  private static final String UUID_PATTERN =
      "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";

  /** Deletes the entries of the root whose whole name matches {@code regex}. */
  private void deleteLeftovers(String regex) {
    Path dir = new Path(root);
    java.util.regex.Pattern p = java.util.regex.Pattern.compile(regex);
    try {
      FileSystem fs = fs(dir);
      if (!fs.exists(dir)) {
        return;
      }
      for (org.apache.hadoop.fs.FileStatus st : fs.listStatus(dir)) {
        if (p.matcher(st.getPath().getName()).matches()) {
          fs.delete(st.getPath(), true);
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException("cannot clean up " + dir + endpointOf(conf(), dir) + ": "
          + e.getMessage(), e);
    }
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
      fs.mkdirs(dst.getParent()); // a partition's table directory may not exist yet
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
    String tmp = tmpPath(name);
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

  /**
   * Whether {@code table} has been written (complete, or pending while its stage finishes): for
   * a partitioned table, any of its values.
   */
  public boolean has(Tables table) {
    if (table.partitionColumn() == null) {
      return completedHash(table.tableName()) != null;
    }
    return !writtenPartitions(table).isEmpty();
  }

  /** The marked sub-directories of a partitioned table ({@code failed/stage=score}, ...). */
  private List<String> writtenPartitions(Tables table) {
    Path dir = new Path(path(table));
    List<String> out = new ArrayList<>();
    try {
      FileSystem fs = fs(dir);
      if (!fs.exists(dir)) {
        return out;
      }
      for (org.apache.hadoop.fs.FileStatus st : fs.listStatus(dir)) {
        String name = table.tableName() + "/" + st.getPath().getName();
        if (st.isDirectory() && st.getPath().getName().startsWith(table.partitionColumn() + "=")
            && completedHash(name) != null) {
          out.add(path(name));
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException("cannot list " + dir + endpointOf(conf(), dir) + ": "
          + e.getMessage(), e);
    }
    out.sort(null);
    return out;
  }

  public Dataset<Row> read(Tables table) {
    if (table.partitionColumn() != null) {
      List<String> parts = writtenPartitions(table);
      if (parts.isEmpty()) {
        throw new IllegalStateException("table " + table.tableName() + " at " + path(table)
            + " has not been written: run a stage that writes it first");
      }
      Dataset<Row> df = spark.read().option("basePath", path(table))
          .schema(table.schema()).parquet(parts.toArray(new String[0]));
      table.check(df);
      return df;
    }
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
    deleteLeftovers("_tmp-" + UUID_PATTERN + "-" + java.util.regex.Pattern.quote(p.getName()));
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
