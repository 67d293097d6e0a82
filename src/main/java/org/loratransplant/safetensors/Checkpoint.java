package org.loratransplant.safetensors;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.FloatBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * The weights of a Hugging Face model directory: one {@code model.safetensors}, or the shards
 * listed by {@code model.safetensors.index.json}, behind one name-to-tensor view.
 *
 * <p>A sharded checkpoint is checked when opened: the index's {@code weight_map} must name only
 * existing shard files in the same directory, every tensor it lists must be in its shard, and
 * every tensor in a shard must be listed for that shard, so two files can never disagree about
 * a weight. Pickle checkpoints ({@code pytorch_model.bin} and the like) are refused: loading
 * one can execute arbitrary code.
 *
 * <p>Reads are thread-safe (see {@link SafeTensorsFile}). Close the checkpoint to release the
 * files.
 */
public final class Checkpoint implements AutoCloseable {
  /** The single-file checkpoint name, used when present. */
  public static final String SINGLE_FILE = "model.safetensors";

  /** The sharded checkpoint index, used when there is no {@link #SINGLE_FILE}. */
  public static final String INDEX_FILE = "model.safetensors.index.json";

  private static final long MAX_INDEX_BYTES = SafeTensorsFile.MAX_HEADER_BYTES;
  private static final List<String> PICKLE_SUFFIXES = List.of(".bin", ".pt", ".pth");

  private final Path dir;
  private final List<SafeTensorsFile> files;
  private final Map<String, SafeTensorsFile> fileByTensor;
  private final Set<String> names;

  private Checkpoint(Path dir, List<SafeTensorsFile> files, Map<String, SafeTensorsFile> byTensor) {
    this.dir = dir;
    this.files = List.copyOf(files);
    this.fileByTensor = Collections.unmodifiableMap(byTensor);
    this.names = Collections.unmodifiableSet(new TreeSet<>(byTensor.keySet()));
  }

  /**
   * Opens a model directory's weights: {@code model.safetensors} if present, else the shards of
   * {@code model.safetensors.index.json}.
   *
   * @param modelDir a Hugging Face model directory
   * @return the open checkpoint
   * @throws SafeTensorsException naming the directory, index, shard and tensor involved when the
   *     directory has no safetensors weights, holds only a pickle checkpoint, or the index and
   *     shards are inconsistent or malformed
   */
  public static Checkpoint open(Path modelDir) {
    if (!Files.isDirectory(modelDir)) {
      throw new SafeTensorsException(modelDir + ": no such directory");
    }
    Path single = modelDir.resolve(SINGLE_FILE);
    if (Files.exists(single)) {
      SafeTensorsFile file = SafeTensorsFile.open(single);
      Map<String, SafeTensorsFile> byTensor = new HashMap<>();
      for (String name : file.names()) {
        byTensor.put(name, file);
      }
      return new Checkpoint(modelDir, List.of(file), byTensor);
    }
    Path index = modelDir.resolve(INDEX_FILE);
    if (Files.exists(index)) {
      return openSharded(modelDir, index);
    }
    List<String> pickles = pickleFiles(modelDir);
    if (!pickles.isEmpty()) {
      throw new SafeTensorsException(
          modelDir
              + ": has no "
              + SINGLE_FILE
              + " or "
              + INDEX_FILE
              + ", only pickle checkpoint file(s) "
              + pickles
              + ". Pickle checkpoints are an unsafe format that may execute code on load and are"
              + " not supported; convert them to safetensors in a trusted environment (e.g."
              + " transformers: from_pretrained(dir).save_pretrained(out, safe_serialization=True)).");
    }
    throw new SafeTensorsException(
        modelDir + ": no model weights found (expected " + SINGLE_FILE + " or " + INDEX_FILE + ")");
  }

  private static Checkpoint openSharded(Path dir, Path index) {
    Map<String, String> weightMap = readWeightMap(index);
    // Shard name -> tensors the index puts there; sorted so shards open in a stable order.
    Map<String, Set<String>> expected = new TreeMap<>();
    for (Map.Entry<String, String> e : weightMap.entrySet()) {
      expected.computeIfAbsent(e.getValue(), k -> new TreeSet<>()).add(e.getKey());
    }
    List<SafeTensorsFile> opened = new ArrayList<>();
    try {
      Map<String, SafeTensorsFile> byTensor = new HashMap<>();
      for (Map.Entry<String, Set<String>> shardEntry : expected.entrySet()) {
        String shard = shardEntry.getKey();
        Path shardPath = dir.resolve(shard);
        if (!Files.isRegularFile(shardPath)) {
          throw new SafeTensorsException(
              index + ": shard '" + shard + "' (of tensor '" + shardEntry.getValue().iterator().next()
                  + "') does not exist in " + dir);
        }
        SafeTensorsFile file = SafeTensorsFile.open(shardPath);
        opened.add(file);
        for (String name : shardEntry.getValue()) {
          if (!file.has(name)) {
            throw new SafeTensorsException(
                index + ": maps tensor '" + name + "' to shard '" + shard
                    + "', but that shard has no such tensor");
          }
          byTensor.put(name, file);
        }
        for (String name : file.names()) {
          String listed = weightMap.get(name);
          if (listed == null) {
            throw new SafeTensorsException(
                index + ": shard '" + shard + "' holds tensor '" + name
                    + "', which the index does not list");
          }
          if (!listed.equals(shard)) {
            throw new SafeTensorsException(
                index + ": shard '" + shard + "' holds tensor '" + name
                    + "', which the index maps to shard '" + listed + "'");
          }
        }
      }
      return new Checkpoint(dir, opened, byTensor);
    } catch (RuntimeException | Error e) {
      for (SafeTensorsFile f : opened) {
        try {
          f.close();
        } catch (RuntimeException suppressed) {
          e.addSuppressed(suppressed);
        }
      }
      throw e;
    }
  }

  /** Parses and checks the index: a {@code weight_map} object of plain shard file names. */
  private static Map<String, String> readWeightMap(Path index) {
    JsonNode root;
    try {
      long size = Files.size(index);
      if (size > MAX_INDEX_BYTES) {
        throw new SafeTensorsException(
            index + ": " + size + " bytes, over the " + MAX_INDEX_BYTES + "-byte limit");
      }
      root = HeaderJson.parse(HeaderJson.decodeUtf8(Files.readAllBytes(index)));
    } catch (CharacterCodingException e) {
      throw new SafeTensorsException(index + ": not valid UTF-8", e);
    } catch (IOException e) {
      throw new SafeTensorsException(index + ": cannot read or parse: " + e.getMessage(), e);
    }
    if (root == null || !root.isObject()) {
      throw new SafeTensorsException(index + ": not a JSON object");
    }
    JsonNode map = root.get("weight_map");
    if (map == null || !map.isObject()) {
      throw new SafeTensorsException(index + ": 'weight_map' is missing or not an object");
    }
    if (map.isEmpty()) {
      throw new SafeTensorsException(index + ": 'weight_map' lists no tensors");
    }
    Map<String, String> weightMap = new HashMap<>();
    for (Iterator<Map.Entry<String, JsonNode>> it = map.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      JsonNode shard = e.getValue();
      if (!shard.isTextual()) {
        throw new SafeTensorsException(
            index + ": tensor '" + e.getKey() + "' maps to " + shard + ", not a shard file name");
      }
      String name = shard.textValue();
      // Only plain names in the model directory: an index must not reach other files.
      if (name.isEmpty() || name.equals(".") || name.equals("..") || name.contains("/")
          || name.contains("\\")) {
        throw new SafeTensorsException(
            index + ": tensor '" + e.getKey() + "' maps to '" + name
                + "', which is not a plain file name in the model directory");
      }
      weightMap.put(e.getKey(), name);
    }
    return weightMap;
  }

  private static List<String> pickleFiles(Path dir) {
    List<String> found = new ArrayList<>();
    try (DirectoryStream<Path> entries = Files.newDirectoryStream(dir)) {
      for (Path p : entries) {
        String name = p.getFileName().toString();
        if (PICKLE_SUFFIXES.stream().anyMatch(name::endsWith) && Files.isRegularFile(p)) {
          found.add(name);
        }
      }
    } catch (IOException e) {
      throw new SafeTensorsException(dir + ": cannot list directory: " + e, e);
    }
    Collections.sort(found);
    return found;
  }

  /** @return the model directory */
  public Path dir() {
    return dir;
  }

  /** @return every tensor name, sorted */
  public Set<String> names() {
    return names;
  }

  /**
   * @param name a tensor name
   * @return whether the checkpoint holds it
   */
  public boolean has(String name) {
    return fileByTensor.containsKey(name);
  }

  /**
   * @param name a tensor name
   * @return its header entry (offsets are within its file, see {@link #fileOf})
   * @throws SafeTensorsException naming the directory and tensor when it is missing
   */
  public TensorInfo info(String name) {
    return file(name).info(name);
  }

  /**
   * @param name a tensor name
   * @return the name of the file in {@link #dir()} that holds it
   * @throws SafeTensorsException naming the directory and tensor when it is missing
   */
  public String fileOf(String name) {
    return file(name).path().getFileName().toString();
  }

  /**
   * @param name a floating-point tensor
   * @return its values as float32, row-major (see {@link SafeTensorsFile#readFloat32})
   */
  public float[] readFloat32(String name) {
    return file(name).readFloat32(name);
  }

  /**
   * @param name a floating-point tensor
   * @param target receives {@code numel} values at its position (see {@link
   *     SafeTensorsFile#readFloat32Into})
   */
  public void readFloat32Into(String name, FloatBuffer target) {
    file(name).readFloat32Into(name, target);
  }

  /**
   * @param name a tensor
   * @param target receives its raw little-endian bytes at its position (see {@link
   *     SafeTensorsFile#readBytesInto})
   */
  public void readBytesInto(String name, java.nio.ByteBuffer target) {
    file(name).readBytesInto(name, target);
  }

  /** Part of a tensor's bytes (see {@link SafeTensorsFile#readBytesInto(String, long, java.nio.ByteBuffer)}). */
  public void readBytesInto(String name, long offset, java.nio.ByteBuffer target) {
    file(name).readBytesInto(name, offset, target);
  }

  /**
   * @param name a tensor
   * @return its raw little-endian bytes
   */
  public byte[] readBytes(String name) {
    return file(name).readBytes(name);
  }

  /**
   * The tensors {@code names}, back to back in one file, as one private memory mapping; null
   * when they are in different files or {@link SafeTensorsFile#mapPrivate} cannot map them.
   */
  public java.nio.MappedByteBuffer mapPrivate(List<String> names) {
    SafeTensorsFile first = file(names.get(0));
    for (String name : names) {
      if (file(name) != first) {
        return null;
      }
    }
    return first.mapPrivate(names);
  }

  private SafeTensorsFile file(String name) {
    SafeTensorsFile file = fileByTensor.get(name);
    if (file == null) {
      throw new SafeTensorsException(dir + ": checkpoint has no tensor '" + name + "'");
    }
    return file;
  }

  /** Closes every file of the checkpoint. */
  @Override
  public void close() {
    SafeTensorsException failure = null;
    for (SafeTensorsFile f : files) {
      try {
        f.close();
      } catch (SafeTensorsException e) {
        if (failure == null) {
          failure = e;
        } else {
          failure.addSuppressed(e);
        }
      }
    }
    if (failure != null) {
      throw failure;
    }
  }

  @Override
  public String toString() {
    return "Checkpoint[" + dir + ", " + names.size() + " tensors in " + files.size() + " file(s)]";
  }
}
