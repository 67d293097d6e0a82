package org.loratransplant.safetensors;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A model directory's weights: {@code model.safetensors}, or the shards listed by
 * {@code model.safetensors.index.json}. Pickle checkpoints are refused: loading one can execute
 * arbitrary code.
 */
public final class Checkpoint implements AutoCloseable {
  private static final String SINGLE = "model.safetensors";
  private static final String INDEX = "model.safetensors.index.json";
  private final Path directory;
  private final Map<String, SafeTensorsFile> fileOf;
  private final List<SafeTensorsFile> files;

  private Checkpoint(Path directory, Map<String, SafeTensorsFile> fileOf,
      List<SafeTensorsFile> files) {
    this.directory = directory;
    this.fileOf = fileOf;
    this.files = files;
  }

  public static Checkpoint open(Path dir) {
    if (!Files.isDirectory(dir)) {
      throw new SafeTensorsException(dir + ": not a directory");
    }
    Path single = dir.resolve(SINGLE);
    Path index = dir.resolve(INDEX);
    if (Files.isRegularFile(single)) {
      SafeTensorsFile f = SafeTensorsFile.open(single);
      Map<String, SafeTensorsFile> map = new LinkedHashMap<>();
      f.tensors().forEach(t -> map.put(t.name(), f));
      return new Checkpoint(dir, Collections.unmodifiableMap(map), List.of(f));
    }
    if (Files.isRegularFile(index)) {
      return openSharded(dir, index);
    }
    String pickle = findPickle(dir);
    if (pickle != null) {
      throw new SafeTensorsException(dir.resolve(pickle) + ": pickle checkpoints are not "
          + "supported: loading one can execute arbitrary code. Convert it to safetensors "
          + "(e.g. save_pretrained(..., safe_serialization=True)).");
    }
    throw new SafeTensorsException(dir + ": no " + SINGLE + " or " + INDEX + " found");
  }

  private static Checkpoint openSharded(Path dir, Path index) {
    JsonNode root;
    try {
      root = new ObjectMapper().readTree(index.toFile());
    } catch (IOException e) {
      throw new SafeTensorsException(index + ": not valid JSON: " + e.getMessage(), e);
    }
    JsonNode map = root == null ? null : root.get("weight_map");
    if (map == null || !map.isObject()) {
      throw new SafeTensorsException(index + ": missing weight_map object");
    }
    Map<String, SafeTensorsFile> shards = new LinkedHashMap<>();
    Map<String, SafeTensorsFile> fileOf = new LinkedHashMap<>();
    try {
      for (Iterator<Map.Entry<String, JsonNode>> it = map.fields(); it.hasNext(); ) {
        Map.Entry<String, JsonNode> e = it.next();
        String shardName = e.getValue().asText();
        if (shardName.contains("/") || shardName.contains("\\")) {
          throw new SafeTensorsException(index + ": shard '" + shardName + "' of tensor '"
              + e.getKey() + "' is not a file name in the model directory");
        }
        SafeTensorsFile shard = shards.get(shardName);
        if (shard == null) {
          Path p = dir.resolve(shardName);
          if (!Files.isRegularFile(p)) {
            throw new SafeTensorsException(index + ": shard " + p + " of tensor '" + e.getKey()
                + "' does not exist");
          }
          shard = SafeTensorsFile.open(p);
          shards.put(shardName, shard);
        }
        if (!shard.has(e.getKey())) {
          throw new SafeTensorsException(index + ": tensor '" + e.getKey() + "' is mapped to "
              + shard.path() + " which does not contain it");
        }
        fileOf.put(e.getKey(), shard);
      }
      for (SafeTensorsFile shard : shards.values()) {
        for (TensorInfo t : shard.tensors()) {
          if (fileOf.get(t.name()) != shard) {
            throw new SafeTensorsException(shard.path() + ": tensor '" + t.name()
                + "' is not listed for this shard in " + index);
          }
        }
      }
    } catch (RuntimeException e) {
      shards.values().forEach(SafeTensorsFile::close);
      throw e;
    }
    return new Checkpoint(dir, Collections.unmodifiableMap(fileOf),
        new ArrayList<>(shards.values()));
  }

  private static String findPickle(Path dir) {
    try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir, "*.{bin,pt,pth,ckpt}")) {
      for (Path p : ds) {
        return p.getFileName().toString();
      }
    } catch (IOException e) {
      return null;
    }
    return null;
  }

  public Path directory() {
    return directory;
  }

  public Set<String> names() {
    return fileOf.keySet();
  }

  public TensorInfo info(String name) {
    return file(name).info(name);
  }

  /** The file holding {@code name}. */
  public Path fileOf(String name) {
    return file(name).path();
  }

  public float[] readFloat32(String name) {
    return file(name).readFloat32(name);
  }

  private SafeTensorsFile file(String name) {
    SafeTensorsFile f = fileOf.get(name);
    if (f == null) {
      throw new SafeTensorsException(directory + ": tensor '" + name + "' is missing");
    }
    return f;
  }

  @Override
  public void close() {
    files.forEach(SafeTensorsFile::close);
  }
}
