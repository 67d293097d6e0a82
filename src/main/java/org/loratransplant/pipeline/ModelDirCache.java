package org.loratransplant.pipeline;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.EtagSource;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.LocatedFileStatus;
import org.apache.hadoop.fs.RemoteIterator;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Local copies of remote model and adapter directories ({@code s3a://}, {@code hdfs://}, any
 * Hadoop file system), one per machine: every executor JVM on a host that points at the same
 * cache root shares one copy.
 *
 * <p>A copy lives in {@code <root>/<name>-<key>/}, where the key hashes the URI and the remote
 * listing (relative path, size, modification time and, on S3, ETag of every file): a remote
 * directory that
 * changes gets a new copy, never a stale one. The copy is written to a temp directory beside it,
 * checked (each file's size against the listing, and the SHA-256 computed while downloading
 * against the SHA-256 of the file as written), given a manifest ({@value #MANIFEST}: every file's
 * size and SHA-256) and only then renamed into place, so a reader never sees a half-written copy.
 *
 * <p>Two copiers of one directory on one machine (two executor JVMs, or two tasks in one JVM)
 * take turns on an exclusive lock: a JVM-wide monitor per lock file (a Java {@link FileLock} is
 * per JVM, so two threads must not both ask the OS for it) and then {@link FileChannel#lock()} on
 * {@code <root>/<name>-<key>.lock}, which the OS releases if the holder dies. The second finds the
 * first one's finished copy and uses it. Even without the lock (a file system whose locks do not
 * work, NFS say) the rename only ever publishes a complete, verified copy: the first rename wins
 * and a loser deletes its own temp directory.
 *
 * <p>A cached copy is verified against its manifest (sizes and SHA-256 of every file) the first
 * time an instance hands it out; one that fails (truncated, corrupted, a file missing) is moved
 * aside, deleted and fetched again. Nothing is ever deleted from the cache otherwise: remove old
 * {@code <name>-<key>} directories by hand.
 */
public final class ModelDirCache {
  private static final Logger LOG = LoggerFactory.getLogger(ModelDirCache.class);
  /** The manifest written into every finished copy (the last file written before the rename). */
  public static final String MANIFEST = ".lt-cache-manifest.json";
  private static final ObjectMapper JSON = new ObjectMapper();
  /** One monitor per lock file in this JVM: FileChannel.lock is held per JVM, not per thread. */
  private static final Map<Path, Object> JVM_LOCKS = new ConcurrentHashMap<>();

  private final Path root;
  /** Copies this instance has verified (or made) already, by URI. */
  private final Map<String, Path> verified = new ConcurrentHashMap<>();
  /** Downloads this instance has completed and published. */
  private final AtomicInteger copies = new AtomicInteger();

  public ModelDirCache(Path root) {
    this.root = root.toAbsolutePath().normalize();
  }

  public Path root() {
    return root;
  }

  /** How many remote directories this instance has downloaded (not found in the cache). */
  public int copiesMade() {
    return copies.get();
  }

  /**
   * One file of a remote directory: path relative to it, size, modification time and the
   * store's ETag where it has one (S3: a hash of the content, so that a file rewritten within
   * the same second with the same size still counts as changed), else "".
   */
  record RemoteFile(String relative, long size, long modified, String etag) {}

  /**
   * The local copy of the remote directory {@code uri}, fetched if this machine has none yet.
   *
   * @throws IllegalArgumentException if the directory does not exist or holds no files (the
   *     message names the URI)
   * @throws UncheckedIOException if the copy fails (the message names the URI)
   */
  public Path get(String uri, Configuration hadoop) {
    Path done = verified.get(uri);
    if (done != null) {
      return done;
    }
    return verified.computeIfAbsent(uri, u -> fetch(u, hadoop));
  }

  private Path fetch(String uri, Configuration hadoop) {
    org.apache.hadoop.fs.Path remote = new org.apache.hadoop.fs.Path(uri);
    FileSystem fs;
    List<RemoteFile> listing;
    try {
      fs = remote.getFileSystem(hadoop);
      listing = list(fs, remote);
    } catch (FileNotFoundException e) {
      throw new IllegalArgumentException("model directory " + uri + " does not exist", e);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot list model directory " + uri + ": " + e, e);
    }
    if (listing.isEmpty()) {
      throw new IllegalArgumentException("model directory " + uri + " holds no files");
    }
    String name = safeName(remote.getName());
    String key = Keys.of("model-dir-cache", uri, listing.toString());
    Path target = root.resolve(name + "-" + key);
    try {
      Files.createDirectories(root);
      Path lockFile = root.resolve(name + "-" + key + ".lock");
      synchronized (JVM_LOCKS.computeIfAbsent(lockFile, p -> new Object())) {
        try (FileChannel ch = FileChannel.open(lockFile, StandardOpenOption.CREATE,
            StandardOpenOption.WRITE)) {
          FileLock lock = lock(ch, lockFile);
          try {
            if (Files.isDirectory(target)) {
              String problem = check(target, listing);
              if (problem == null) {
                LOG.info("model cache: {} -> {} (cached copy verified)", uri, target);
                return target;
              }
              LOG.warn("model cache: the cached copy of {} at {} is damaged ({}): fetching it "
                  + "again", uri, target, problem);
              discard(target);
            }
            copy(fs, remote, uri, listing, target);
            return target;
          } finally {
            if (lock != null) {
              lock.release();
            }
          }
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException("cannot copy model directory " + uri + " into " + root
          + ": " + e, e);
    }
  }

  /**
   * The exclusive lock on {@code lockFile}, or null where the file system has no working locks
   * (some NFS mounts answer "No locks available"): then copiers race, and the rename in
   * {@link #copy} still publishes only complete copies, the first one winning.
   */
  private static FileLock lock(FileChannel ch, Path lockFile) {
    try {
      return ch.lock();
    } catch (IOException e) {
      LOG.warn("model cache: cannot lock {} ({}): copying without the lock", lockFile,
          e.toString());
      return null;
    }
  }

  private static List<RemoteFile> list(FileSystem fs, org.apache.hadoop.fs.Path dir)
      throws IOException {
    // Qualified, so that file names strip cleanly whatever form the URI was written in.
    String prefix = fs.makeQualified(dir).toUri().getPath();
    prefix = prefix.endsWith("/") ? prefix : prefix + "/";
    List<RemoteFile> out = new ArrayList<>();
    RemoteIterator<LocatedFileStatus> it = fs.listFiles(dir, true);
    while (it.hasNext()) {
      LocatedFileStatus st = it.next();
      String p = st.getPath().toUri().getPath();
      if (!p.startsWith(prefix)) {
        throw new IOException("listing of " + dir + " returned " + st.getPath());
      }
      String etag = st instanceof EtagSource e && e.getEtag() != null ? e.getEtag() : "";
      out.add(new RemoteFile(p.substring(prefix.length()), st.getLen(),
          st.getModificationTime(), etag));
    }
    out.sort(Comparator.comparing(RemoteFile::relative));
    return out;
  }

  /** Downloads into a temp dir, verifies, writes the manifest, renames into place. */
  private void copy(FileSystem fs, org.apache.hadoop.fs.Path remote, String uri,
      List<RemoteFile> listing, Path target) throws IOException {
    long t0 = System.nanoTime();
    Path tmp = root.resolve(".tmp-" + target.getFileName() + "-" + UUID.randomUUID());
    try {
      ArrayNode files = JSON.createArrayNode();
      long bytes = 0;
      for (RemoteFile f : listing) {
        Path local = tmp.resolve(f.relative()).normalize();
        if (!local.startsWith(tmp)) {
          throw new IOException("file name escapes the directory: " + f.relative());
        }
        Files.createDirectories(local.getParent());
        MessageDigest md = sha256();
        try (InputStream in = new DigestInputStream(
            fs.open(new org.apache.hadoop.fs.Path(remote, f.relative())), md);
            OutputStream out = Files.newOutputStream(local, StandardOpenOption.CREATE_NEW)) {
          in.transferTo(out);
        }
        String downloaded = HexFormat.of().formatHex(md.digest());
        long size = Files.size(local);
        if (size != f.size()) {
          throw new IOException(f.relative() + ": " + size + " bytes copied, the listing says "
              + f.size());
        }
        String written = sha256(local);
        if (!written.equals(downloaded)) {
          throw new IOException(f.relative() + ": the file as written differs from the bytes "
              + "downloaded (SHA-256 " + written + " vs " + downloaded + ")");
        }
        ObjectNode entry = files.addObject();
        entry.put("path", f.relative());
        entry.put("size", f.size());
        entry.put("modified", f.modified());
        entry.put("etag", f.etag());
        entry.put("sha256", downloaded);
        bytes += size;
      }
      ObjectNode manifest = JSON.createObjectNode();
      manifest.put("uri", uri);
      manifest.set("files", files);
      JSON.writerWithDefaultPrettyPrinter().writeValue(tmp.resolve(MANIFEST).toFile(), manifest);
      try {
        Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
      } catch (FileAlreadyExistsException | DirectoryNotEmptyException e) {
        // Another copier (one the lock could not keep out) finished first: its copy is as good.
        LOG.info("model cache: {} was copied to {} by another process meanwhile", uri, target);
        return;
      } catch (AtomicMoveNotSupportedException e) {
        throw new IOException("the model cache " + root + " cannot rename atomically", e);
      }
      tmp = null;
      copies.incrementAndGet();
      LOG.info(String.format("model cache: copied %s (%d files, %d bytes) to %s in %.2f s, "
          + "pid %d", uri, listing.size(), bytes, target, (System.nanoTime() - t0) / 1e9,
          ProcessHandle.current().pid()));
    } finally {
      if (tmp != null) {
        deleteTree(tmp);
      }
    }
  }

  /**
   * Why a cached copy is not a faithful copy of the listing (null if it is): the manifest must
   * list exactly the remote files with their sizes and modification times, and every file must
   * have the manifest's size and SHA-256.
   */
  static String check(Path dir, List<RemoteFile> listing) {
    JsonNode manifest;
    try {
      manifest = JSON.readTree(dir.resolve(MANIFEST).toFile());
    } catch (IOException e) {
      return "no readable manifest: " + e.getMessage();
    }
    JsonNode files = manifest.path("files");
    if (files.size() != listing.size()) {
      return "the manifest lists " + files.size() + " files, the remote directory "
          + listing.size();
    }
    for (int i = 0; i < listing.size(); i++) {
      RemoteFile f = listing.get(i);
      JsonNode e = files.get(i);
      if (!f.relative().equals(e.path("path").asText()) || f.size() != e.path("size").asLong()
          || f.modified() != e.path("modified").asLong()
          || !f.etag().equals(e.path("etag").asText())) {
        return "the manifest's " + e.path("path").asText() + " is not the remote " + f;
      }
      Path local = dir.resolve(f.relative());
      try {
        long size = Files.size(local);
        if (size != f.size()) {
          return f.relative() + " has " + size + " bytes, expected " + f.size();
        }
        String sha = sha256(local);
        if (!sha.equals(e.path("sha256").asText())) {
          return f.relative() + " has SHA-256 " + sha + ", expected "
              + e.path("sha256").asText();
        }
      } catch (IOException x) {
        return f.relative() + ": " + x;
      }
    }
    return null;
  }

  /** Moves a damaged copy out of the way (one rename), then deletes it. */
  private void discard(Path dir) throws IOException {
    Path trash = root.resolve(".tmp-damaged-" + dir.getFileName() + "-" + UUID.randomUUID());
    Files.move(dir, trash, StandardCopyOption.ATOMIC_MOVE);
    deleteTree(trash);
  }

  private static String safeName(String name) {
    String s = name.replaceAll("[^A-Za-z0-9._-]", "_");
    return s.isEmpty() || s.startsWith(".") ? "dir" + s : s;
  }

  private static MessageDigest sha256() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  static String sha256(Path file) throws IOException {
    MessageDigest md = sha256();
    try (InputStream in = new DigestInputStream(Files.newInputStream(file), md)) {
      in.transferTo(OutputStream.nullOutputStream());
    }
    return HexFormat.of().formatHex(md.digest());
  }

  private static void deleteTree(Path dir) {
    if (!Files.exists(dir)) {
      return;
    }
    try (Stream<Path> paths = Files.walk(dir)) {
      for (Path p : (Iterable<Path>) paths.sorted(Comparator.reverseOrder())::iterator) {
        Files.deleteIfExists(p);
      }
    } catch (IOException e) {
      LOG.warn("model cache: could not delete {}: {}", dir, e.toString());
    }
  }

  /** The default cache root: {@code lt.model-cache}, else {@code LT_MODEL_CACHE}, else tmp. */
  static Path defaultRoot() {
    String p = System.getProperty("lt.model-cache");
    if (p == null || p.isBlank()) {
      p = System.getenv("LT_MODEL_CACHE");
    }
    if (p == null || p.isBlank()) {
      return Path.of(System.getProperty("java.io.tmpdir"),
          "lt-model-cache-" + System.getProperty("user.name"));
    }
    return Path.of(p);
  }

  @Override
  public String toString() {
    return "ModelDirCache[" + root + "]";
  }
}
