package org.loratransplant.safetensors;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.CharBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Writes safetensors files byte-identical to what the Python {@code safetensors} library (its
 * Rust core, {@code safetensors::tensor::prepare}) writes for the same tensors and metadata:
 *
 * <ul>
 *   <li>tensors are laid out in the data section by dtype, largest reference {@code Dtype}
 *       first (I64, F64, F32, I32, BF16, F16, I16, I8, U8, BOOL: "descending alignment"), then
 *       by name in byte order, with no padding between them;
 *   <li>the header lists {@code __metadata__} first (omitted when there is none), then the
 *       tensors in that same data order, as compact JSON ({@code {"k":v,...}}, no spaces) with
 *       each entry's fields in the order {@code dtype, shape, data_offsets};
 *   <li>the header is padded with spaces to a multiple of 8 bytes, so the data section (and each
 *       8-byte element of the first tensor) is aligned.
 * </ul>
 *
 * <p>Metadata keys are written sorted. With two or more keys the Python library has no fixed
 * order (it serializes a Rust {@code HashMap}), so there is no byte-exact target to match; with
 * zero or one key (e.g. transformers' and peft's {@code {"format":"pt"}}) the output is identical.
 * An empty metadata map is treated as none, so a file whose header holds an empty {@code
 * "__metadata__":{}} is the one case that does not rewrite identically.
 *
 * <p>Writing is atomic: the file is written and synced under a temporary name in the target's
 * directory, then renamed over the target. Readers see the old file or the complete new one,
 * never a partial file, and a failed write leaves the old file and no temporary file behind.
 */
public final class SafeTensorsWriter {
  private static final String METADATA_KEY = "__metadata__";
  private static final int CHUNK_BYTES = 1 << 20;

  private SafeTensorsWriter() {}

  /**
   * Writes {@code tensors} and {@code metadata} to {@code target}, replacing it atomically.
   *
   * @param target the file to write; its directory must exist
   * @param tensors tensors by name (any map; the layout does not depend on its iteration order)
   * @param metadata {@code __metadata__} entries, or {@code null}/empty for none
   * @throws SafeTensorsException naming {@code target} when an argument is invalid (reserved or
   *     non-encodable name, header too large) or writing fails; the previous file at {@code
   *     target}, if any, is then unchanged
   */
  public static void write(
      Path target, Map<String, TensorData> tensors, Map<String, String> metadata) {
    List<Map.Entry<String, TensorData>> ordered = dataOrder(target, tensors);
    byte[] header = header(target, ordered, metadata);
    writeAtomically(target, header, ordered);
  }

  /**
   * The tensors in data-section order: reference dtype order descending, then name by UTF-8
   * bytes (Rust compares {@code str} bytewise; Java's {@code String.compareTo} compares UTF-16
   * units, which orders some non-BMP names differently).
   */
  static List<Map.Entry<String, TensorData>> dataOrder(
      Path target, Map<String, TensorData> tensors) {
    List<Map.Entry<String, TensorData>> ordered = new ArrayList<>(tensors.size());
    for (Map.Entry<String, TensorData> e : tensors.entrySet()) {
      if (e.getKey() == null || e.getValue() == null) {
        throw new SafeTensorsException(target + ": null tensor name or data");
      }
      if (e.getKey().equals(METADATA_KEY)) {
        throw new SafeTensorsException(
            target + ": '" + METADATA_KEY + "' is reserved and cannot name a tensor");
      }
      ordered.add(Map.entry(e.getKey(), e.getValue()));
    }
    Comparator<Map.Entry<String, TensorData>> byDtype =
        Comparator.comparingInt(e -> -e.getValue().dtype().referenceOrder());
    ordered.sort(
        byDtype.thenComparing(
            (a, b) -> Arrays.compareUnsigned(utf8(target, a.getKey()), utf8(target, b.getKey()))));
    return ordered;
  }

  /** The header bytes, space-padded to a multiple of 8, for tensors already in data order. */
  static byte[] header(
      Path target, List<Map.Entry<String, TensorData>> ordered, Map<String, String> metadata) {
    StringBuilder json = new StringBuilder(64 + 96 * ordered.size());
    json.append('{');
    boolean first = true;
    if (metadata != null && !metadata.isEmpty()) {
      List<String> keys = new ArrayList<>(metadata.keySet());
      for (String k : keys) {
        if (k == null || metadata.get(k) == null) {
          throw new SafeTensorsException(target + ": null metadata key or value");
        }
      }
      keys.sort((a, b) -> Arrays.compareUnsigned(utf8(target, a), utf8(target, b)));
      HeaderJson.appendQuoted(json, METADATA_KEY);
      json.append(":{");
      for (int i = 0; i < keys.size(); i++) {
        if (i > 0) {
          json.append(',');
        }
        HeaderJson.appendQuoted(json, keys.get(i));
        json.append(':');
        HeaderJson.appendQuoted(json, metadata.get(keys.get(i)));
      }
      json.append('}');
      first = false;
    }
    long offset = 0;
    for (Map.Entry<String, TensorData> e : ordered) {
      TensorData t = e.getValue();
      long end = Math.addExact(offset, t.data().length);
      if (!first) {
        json.append(',');
      }
      first = false;
      HeaderJson.appendQuoted(json, e.getKey());
      json.append(":{\"dtype\":\"").append(t.dtype().name()).append("\",\"shape\":[");
      for (int i = 0; i < t.shape().size(); i++) {
        if (i > 0) {
          json.append(',');
        }
        json.append(t.shape().get(i).longValue());
      }
      json.append("],\"data_offsets\":[").append(offset).append(',').append(end).append("]}");
      offset = end;
    }
    json.append('}');
    byte[] unpadded = utf8(target, json);
    int padded = (unpadded.length + 7) / 8 * 8;
    if (padded > SafeTensorsFile.MAX_HEADER_BYTES) {
      throw new SafeTensorsException(
          target
              + ": header would be "
              + padded
              + " bytes, over the "
              + SafeTensorsFile.MAX_HEADER_BYTES
              + "-byte limit readers enforce");
    }
    byte[] header = Arrays.copyOf(unpadded, padded);
    Arrays.fill(header, unpadded.length, padded, (byte) ' ');
    return header;
  }

  private static void writeAtomically(
      Path target, byte[] header, List<Map.Entry<String, TensorData>> ordered) {
    Path absolute = target.toAbsolutePath();
    Path dir = absolute.getParent();
    if (dir == null || !Files.isDirectory(dir)) {
      throw new SafeTensorsException(target + ": directory " + dir + " does not exist");
    }
    Path temp = createTemp(target, dir, absolute.getFileName().toString());
    boolean moved = false;
    try {
      try (FileChannel out = FileChannel.open(temp, StandardOpenOption.WRITE)) {
        ByteBuffer length = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
        length.putLong(0, header.length);
        writeFully(out, length);
        writeFully(out, ByteBuffer.wrap(header));
        for (Map.Entry<String, TensorData> e : ordered) {
          byte[] data = e.getValue().data();
          for (int off = 0; off < data.length; off += CHUNK_BYTES) {
            writeFully(out, ByteBuffer.wrap(data, off, Math.min(CHUNK_BYTES, data.length - off)));
          }
        }
        // Sync before the rename: otherwise a crash could leave the new name on empty blocks.
        out.force(true);
      }
      Files.move(
          temp, absolute, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
      moved = true;
    } catch (IOException e) {
      throw new SafeTensorsException(
          target + ": write failed, previous file left unchanged: " + e, e);
    } finally {
      if (!moved) {
        deleteQuietly(temp);
      }
    }
  }

  /** Best effort: the write has already failed, and that failure is what the caller must see. */
  private static void deleteQuietly(Path temp) {
    try {
      Files.deleteIfExists(temp);
    } catch (IOException ignored) {
      // Nothing better to do; the primary exception is already propagating.
    }
  }

  /**
   * A new, empty temporary file beside the target. Not {@code Files.createTempFile}: that makes
   * the file owner-only (0600) on POSIX, and the rename would carry those permissions to the
   * checkpoint; a plain create gets the usual umask permissions.
   */
  private static Path createTemp(Path target, Path dir, String fileName) {
    for (int attempt = 0; ; attempt++) {
      Path temp =
          dir.resolve(
              "."
                  + fileName
                  + "."
                  + Long.toHexString(ThreadLocalRandom.current().nextLong())
                  + ".tmp");
      try {
        return Files.createFile(temp);
      } catch (FileAlreadyExistsException e) {
        if (attempt >= 10) {
          throw new SafeTensorsException(target + ": cannot create a temporary file in " + dir, e);
        }
      } catch (IOException e) {
        throw new SafeTensorsException(
            target + ": cannot create a temporary file in " + dir + ": " + e, e);
      }
    }
  }

  private static void writeFully(FileChannel out, ByteBuffer buffer) throws IOException {
    while (buffer.hasRemaining()) {
      out.write(buffer);
    }
  }

  /** Strict UTF-8: a lone surrogate in a name is an error, not a silent '?'. */
  private static byte[] utf8(Path target, CharSequence s) {
    try {
      ByteBuffer bytes =
          StandardCharsets.UTF_8
              .newEncoder()
              .onMalformedInput(CodingErrorAction.REPORT)
              .onUnmappableCharacter(CodingErrorAction.REPORT)
              .encode(CharBuffer.wrap(s));
      return Arrays.copyOf(bytes.array(), bytes.limit());
    } catch (CharacterCodingException e) {
      throw new SafeTensorsException(
          target + ": name or metadata is not valid Unicode (lone surrogate?): " + abbreviate(s), e);
    }
  }

  private static String abbreviate(CharSequence s) {
    return s.length() <= 80 ? s.toString() : s.subSequence(0, 80) + "...";
  }
}
