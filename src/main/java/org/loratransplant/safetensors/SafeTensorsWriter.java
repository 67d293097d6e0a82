package org.loratransplant.safetensors;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Writes safetensors files laid out as the Python {@code safetensors} library lays them out:
 * data ordered by dtype alignment (largest first) then name, header keys in that same order after
 * {@code __metadata__}, compact JSON padded with spaces to a multiple of 8. The file appears
 * atomically: written to a temporary sibling, then renamed.
 */
public final class SafeTensorsWriter {
  private static final ObjectMapper JSON = new ObjectMapper();

  private SafeTensorsWriter() {}

  public static void write(Path target, Map<String, TensorData> tensors,
      Map<String, String> metadata) {
    List<Map.Entry<String, TensorData>> order = new ArrayList<>(tensors.entrySet());
    order.sort(Comparator.comparingInt((Map.Entry<String, TensorData> e) ->
        -e.getValue().dtype().size()).thenComparing(Map.Entry::getKey));
    Map<String, Object> header = new LinkedHashMap<>();
    if (metadata != null && !metadata.isEmpty()) {
      header.put("__metadata__", new java.util.TreeMap<>(metadata));
    }
    long offset = 0;
    for (Map.Entry<String, TensorData> e : order) {
      TensorData t = e.getValue();
      Map<String, Object> entry = new LinkedHashMap<>();
      entry.put("dtype", t.dtype().name());
      entry.put("shape", t.shape());
      entry.put("data_offsets", new long[] {offset, offset + t.data().length});
      header.put(e.getKey(), entry);
      offset += t.data().length;
    }
    byte[] json;
    try {
      json = JSON.writeValueAsString(header).getBytes(StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new SafeTensorsException(target + ": cannot encode header: " + e.getMessage(), e);
    }
    int padded = (json.length + 7) / 8 * 8;
    byte[] head = new byte[padded];
    java.util.Arrays.fill(head, (byte) ' ');
    System.arraycopy(json, 0, head, 0, json.length);
    Path dir = target.toAbsolutePath().getParent();
    Path tmp = null;
    try {
      Files.createDirectories(dir);
      tmp = Files.createTempFile(dir, "." + target.getFileName(), ".tmp");
      try (OutputStream out = Files.newOutputStream(tmp)) {
        out.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(padded).array());
        out.write(head);
        for (Map.Entry<String, TensorData> e : order) {
          out.write(e.getValue().data());
        }
      }
      Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE,
          StandardCopyOption.REPLACE_EXISTING);
    } catch (IOException e) {
      throw new SafeTensorsException(target + ": write failed: " + e.getMessage(), e);
    } finally {
      if (tmp != null) {
        try {
          Files.deleteIfExists(tmp);
        } catch (IOException ignored) {
          // best effort: the error above is what matters
        }
      }
    }
  }
}
