package org.loratransplant.safetensors;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A safetensors file, validated strictly on open: the header length is bounded, every tensor has
 * a known dtype, {@code numel x size == end - begin} (overflow-checked), offsets lie inside the
 * data section and do not overlap. All of this happens before any tensor-sized allocation, so a
 * hostile header fails with a message instead of an out-of-memory error. Reads are positional
 * and thread-safe.
 */
public final class SafeTensorsFile implements AutoCloseable {
  /** Headers above this size are refused (the Python library uses the same 100 MB bound). */
  public static final long MAX_HEADER_BYTES = 100L * 1024 * 1024;
  private static final ObjectMapper JSON = new ObjectMapper()
      .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);

  private final Path path;
  private final FileChannel channel;
  private final long dataStart;
  private final Map<String, TensorInfo> tensors;
  private final Map<String, String> metadata;

  private SafeTensorsFile(Path path, FileChannel channel, long dataStart,
      Map<String, TensorInfo> tensors, Map<String, String> metadata) {
    this.path = path;
    this.channel = channel;
    this.dataStart = dataStart;
    this.tensors = tensors;
    this.metadata = metadata;
  }

  /** Opens and validates {@code path}. */
  public static SafeTensorsFile open(Path path) {
    FileChannel ch;
    try {
      ch = FileChannel.open(path, StandardOpenOption.READ);
    } catch (IOException e) {
      throw new SafeTensorsException(path + ": cannot open: " + e.getMessage(), e);
    }
    try {
      long size = size(ch, path);
      if (size < 8) {
        throw new SafeTensorsException(path + ": file is " + size
            + " bytes, too short for a safetensors header");
      }
      ByteBuffer lenBuf = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
      readFully(ch, lenBuf, 0, path);
      long headerLen = lenBuf.flip().getLong();
      if (headerLen < 2 || headerLen > MAX_HEADER_BYTES || headerLen > size - 8) {
        throw new SafeTensorsException(path + ": header length " + Long.toUnsignedString(headerLen)
            + " is invalid for a file of " + size + " bytes (at most "
            + Math.min(MAX_HEADER_BYTES, size - 8) + ")");
      }
      ByteBuffer header = ByteBuffer.allocate((int) headerLen);
      readFully(ch, header, 8, path);
      String text;
      try {
        text = StandardCharsets.UTF_8.newDecoder().decode(header.flip()).toString();
      } catch (CharacterCodingException e) {
        throw new SafeTensorsException(path + ": header is not valid UTF-8", e);
      }
      long dataStart = 8 + headerLen;
      Parsed parsed = parseHeader(path, text, size - dataStart);
      return new SafeTensorsFile(path, ch, dataStart, parsed.tensors(), parsed.metadata());
    } catch (RuntimeException e) {
      closeQuietly(ch);
      throw e;
    }
  }

  private record Parsed(Map<String, TensorInfo> tensors, Map<String, String> metadata) {}

  private static Parsed parseHeader(Path path, String text, long dataSize) {
    if (!text.startsWith("{")) {
      throw new SafeTensorsException(path + ": header is not a JSON object");
    }
    JsonNode root;
    try {
      root = JSON.readTree(text);
    } catch (IOException e) {
      throw new SafeTensorsException(path + ": header is not valid JSON: "
          + e.getMessage(), e);
    }
    if (root == null || !root.isObject()) {
      throw new SafeTensorsException(path + ": header is not a JSON object");
    }
    Map<String, TensorInfo> tensors = new LinkedHashMap<>();
    Map<String, String> metadata = new LinkedHashMap<>();
    for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      String name = e.getKey();
      JsonNode v = e.getValue();
      if (name.equals("__metadata__")) {
        if (!v.isObject()) {
          throw new SafeTensorsException(path + ": __metadata__ must be an object of strings");
        }
        v.fields().forEachRemaining(m -> {
          if (!m.getValue().isTextual()) {
            throw new SafeTensorsException(path + ": __metadata__." + m.getKey()
                + " is not a string");
          }
          metadata.put(m.getKey(), m.getValue().asText());
        });
        continue;
      }
      tensors.put(name, parseTensor(path, name, v, dataSize));
    }
    List<TensorInfo> byOffset = new ArrayList<>(tensors.values());
    byOffset.sort(Comparator.comparingLong(TensorInfo::begin).thenComparingLong(TensorInfo::end));
    for (int i = 1; i < byOffset.size(); i++) {
      TensorInfo prev = byOffset.get(i - 1);
      TensorInfo cur = byOffset.get(i);
      if (cur.begin() < prev.end()) {
        throw new SafeTensorsException(path + ": tensor '" + cur.name() + "' (bytes "
            + cur.begin() + ".." + cur.end() + ") overlaps tensor '" + prev.name() + "' (bytes "
            + prev.begin() + ".." + prev.end() + ")");
      }
    }
    return new Parsed(Collections.unmodifiableMap(tensors), Collections.unmodifiableMap(metadata));
  }

  private static TensorInfo parseTensor(Path path, String name, JsonNode v, long dataSize) {
    String where = path + ": tensor '" + name + "'";
    if (!v.isObject()) {
      throw new SafeTensorsException(where + ": entry is not an object");
    }
    JsonNode dt = v.get("dtype");
    if (dt == null || !dt.isTextual()) {
      throw new SafeTensorsException(where + ": missing dtype");
    }
    DType dtype = DType.fromName(dt.asText());
    if (dtype == null) {
      throw new SafeTensorsException(where + ": unknown dtype '" + dt.asText() + "'");
    }
    JsonNode sh = v.get("shape");
    if (sh == null || !sh.isArray()) {
      throw new SafeTensorsException(where + ": missing shape");
    }
    long[] shape = new long[sh.size()];
    long numel = 1;
    for (int i = 0; i < shape.length; i++) {
      JsonNode d = sh.get(i);
      if (!d.isIntegralNumber() || !d.canConvertToLong() || d.asLong() < 0) {
        throw new SafeTensorsException(where + ": shape " + sh + " has an invalid dimension");
      }
      shape[i] = d.asLong();
      try {
        numel = Math.multiplyExact(numel, shape[i]);
      } catch (ArithmeticException e) {
        throw new SafeTensorsException(where + ": shape " + sh + " is too large");
      }
    }
    long bytes;
    try {
      bytes = Math.multiplyExact(numel, (long) dtype.size());
    } catch (ArithmeticException e) {
      throw new SafeTensorsException(where + ": shape " + sh + " is too large");
    }
    JsonNode off = v.get("data_offsets");
    if (off == null || !off.isArray() || off.size() != 2 || !off.get(0).canConvertToLong()
        || !off.get(1).canConvertToLong() || !off.get(0).isIntegralNumber()
        || !off.get(1).isIntegralNumber()) {
      throw new SafeTensorsException(where + ": missing or malformed data_offsets");
    }
    long begin = off.get(0).asLong();
    long end = off.get(1).asLong();
    if (begin < 0 || end < begin) {
      throw new SafeTensorsException(where + ": data_offsets [" + begin + ", " + end
          + "] are invalid");
    }
    if (end > dataSize) {
      throw new SafeTensorsException(where + ": data_offsets end " + end
          + " is past the end of the data (" + dataSize + " bytes; truncated file?)");
    }
    if (end - begin != bytes) {
      throw new SafeTensorsException(where + ": shape " + sh + " x " + dtype + " is " + bytes
          + " bytes but data_offsets span " + (end - begin));
    }
    return new TensorInfo(name, dtype, shape, begin, end);
  }

  public Path path() {
    return path;
  }

  public Map<String, String> metadata() {
    return metadata;
  }

  /** Tensors in header order. */
  public Collection<TensorInfo> tensors() {
    return tensors.values();
  }

  public boolean has(String name) {
    return tensors.containsKey(name);
  }

  public TensorInfo info(String name) {
    TensorInfo t = tensors.get(name);
    if (t == null) {
      throw new SafeTensorsException(path + ": no tensor '" + name + "'");
    }
    return t;
  }

  /** The raw little-endian bytes of a tensor. */
  public byte[] readBytes(String name) {
    TensorInfo t = info(name);
    long n = t.end() - t.begin();
    if (n > Integer.MAX_VALUE - 8) {
      throw new SafeTensorsException(path + ": tensor '" + name + "' is " + n
          + " bytes, too large for one array");
    }
    ByteBuffer buf = ByteBuffer.allocate((int) n);
    readFully(channel, buf, dataStart + t.begin(), path);
    return buf.array();
  }

  /** A tensor's values as float32 (F32, F16, BF16 and F64 are converted exactly or rounded). */
  public float[] readFloat32(String name) {
    TensorInfo t = info(name);
    byte[] raw = readBytes(name);
    ByteBuffer b = ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN);
    int n = Math.toIntExact(t.numel());
    float[] out = new float[n];
    switch (t.dtype()) {
      case F32 -> b.asFloatBuffer().get(out);
      case F64 -> {
        for (int i = 0; i < n; i++) {
          out[i] = (float) b.getDouble(i * 8);
        }
      }
      case BF16 -> {
        for (int i = 0; i < n; i++) {
          out[i] = Float.intBitsToFloat((b.getShort(i * 2) & 0xffff) << 16);
        }
      }
      case F16 -> {
        for (int i = 0; i < n; i++) {
          out[i] = HalfFloat.toFloat(b.getShort(i * 2));
        }
      }
      default -> throw new SafeTensorsException(path + ": tensor '" + name + "' has dtype "
          + t.dtype() + ", not a floating-point type");
    }
    return out;
  }

  private static void readFully(FileChannel ch, ByteBuffer buf, long position, Path path) {
    try {
      long pos = position;
      while (buf.hasRemaining()) {
        int r = ch.read(buf, pos);
        if (r < 0) {
          throw new SafeTensorsException(path + ": unexpected end of file at byte " + pos);
        }
        pos += r;
      }
    } catch (IOException e) {
      throw new SafeTensorsException(path + ": read failed: " + e.getMessage(), e);
    }
  }

  private static long size(FileChannel ch, Path path) {
    try {
      return ch.size();
    } catch (IOException e) {
      throw new SafeTensorsException(path + ": cannot read size: " + e.getMessage(), e);
    }
  }

  private static void closeQuietly(FileChannel ch) {
    try {
      ch.close();
    } catch (IOException ignored) {
      // the original error matters more
    }
  }

  @Override
  public void close() {
    closeQuietly(channel);
  }
}
