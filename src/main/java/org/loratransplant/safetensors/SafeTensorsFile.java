package org.loratransplant.safetensors;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
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
import java.util.Set;

/**
 * An open safetensors file: its validated header, and positional reads of single tensors.
 *
 * <p>{@link #open} reads and checks only the header; tensor data is read on demand with {@link
 * FileChannel} positional reads, so a multi-GB checkpoint never has to fit in memory, and
 * concurrent reads from several threads are safe. Validation is complete before any allocation
 * whose size comes from the file (the header buffer is bounded by {@link #MAX_HEADER_BYTES} and
 * the file size): a hostile header fails with a {@link SafeTensorsException}, never an {@code
 * OutOfMemoryError} or {@code ArithmeticException}.
 *
 * <p>Accepted are exactly the files the reference implementation accepts (the tensors' data must
 * tile the data section with no overlap, gap or trailing bytes, as {@code safe_open} requires),
 * with these stricter rules: the header must start with {@code {}, keys must be unique, a tensor
 * entry may only hold {@code dtype}, {@code shape} and {@code data_offsets}, {@code __metadata__}
 * must be an object of strings, and the dtype must be one of {@link DType}.
 */
public final class SafeTensorsFile implements AutoCloseable {
  /** The reference implementation's limit on the header size (100 MB). */
  public static final long MAX_HEADER_BYTES = 100_000_000L;

  /** Largest array the JVM reliably allocates (as the JDK's own ArraysSupport uses). */
  static final int MAX_ARRAY_LENGTH = Integer.MAX_VALUE - 8;

  /**
   * Reads go through a bounded buffer: handing FileChannel one huge heap buffer would make the
   * JDK allocate a temporary direct buffer of the same size.
   */
  private static final int CHUNK_BYTES = 1 << 20;

  private static final String METADATA_KEY = "__metadata__";
  private static final Set<String> ENTRY_FIELDS = Set.of("dtype", "shape", "data_offsets");

  private final Path path;
  private final FileChannel channel;
  private final long dataStart;
  private final Map<String, String> metadata;
  private final Map<String, TensorInfo> tensors;

  private SafeTensorsFile(
      Path path,
      FileChannel channel,
      long dataStart,
      Map<String, String> metadata,
      Map<String, TensorInfo> tensors) {
    this.path = path;
    this.channel = channel;
    this.dataStart = dataStart;
    this.metadata = metadata;
    this.tensors = tensors;
  }

  /**
   * Opens a file and validates its header.
   *
   * @param path a {@code .safetensors} file
   * @return the open file; close it to release the file handle
   * @throws SafeTensorsException naming the file (and tensor) when it is missing, unreadable or
   *     malformed
   */
  public static SafeTensorsFile open(Path path) {
    if (!Files.exists(path)) {
      throw new SafeTensorsException(path + ": no such file");
    }
    if (!Files.isRegularFile(path)) {
      throw new SafeTensorsException(path + ": not a regular file");
    }
    FileChannel channel;
    try {
      channel = FileChannel.open(path, StandardOpenOption.READ);
    } catch (NoSuchFileException e) {
      throw new SafeTensorsException(path + ": no such file", e);
    } catch (IOException e) {
      throw new SafeTensorsException(path + ": cannot open: " + e, e);
    }
    try {
      return parse(path, channel);
    } catch (RuntimeException | Error e) {
      closeQuietly(channel, e);
      throw e;
    }
  }

  private static SafeTensorsFile parse(Path path, FileChannel channel) {
    long fileSize;
    ByteBuffer prefix = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
    try {
      fileSize = channel.size();
      if (fileSize < 8) {
        throw new SafeTensorsException(
            path + ": file is " + fileSize + " bytes, shorter than the 8-byte header length");
      }
      readFully(path, channel, prefix, 0, "the header length");
    } catch (IOException e) {
      throw new SafeTensorsException(path + ": cannot read header length: " + e, e);
    }
    long headerLength = prefix.getLong(0); // a u64: above 2^63 it reads as negative
    if (headerLength < 0 || headerLength > MAX_HEADER_BYTES) {
      throw new SafeTensorsException(
          path
              + ": header length "
              + Long.toUnsignedString(headerLength)
              + " exceeds the limit of "
              + MAX_HEADER_BYTES
              + " bytes");
    }
    if (headerLength > fileSize - 8) {
      throw new SafeTensorsException(
          path
              + ": header length "
              + headerLength
              + " is larger than the "
              + (fileSize - 8)
              + " bytes that follow it (truncated file?)");
    }
    ByteBuffer headerBytes = ByteBuffer.allocate((int) headerLength);
    try {
      readFully(path, channel, headerBytes, 8, "the header");
    } catch (IOException e) {
      throw new SafeTensorsException(path + ": cannot read header: " + e, e);
    }
    String header;
    try {
      header = HeaderJson.decodeUtf8(headerBytes.array());
    } catch (CharacterCodingException e) {
      throw new SafeTensorsException(path + ": header is not valid UTF-8", e);
    }
    if (!header.startsWith("{")) {
      throw new SafeTensorsException(path + ": header does not start with '{' (not a safetensors file?)");
    }
    JsonNode root;
    try {
      root = HeaderJson.parse(header);
    } catch (IOException e) {
      throw new SafeTensorsException(path + ": header is not valid JSON: " + e.getMessage(), e);
    }
    if (!root.isObject()) {
      throw new SafeTensorsException(path + ": header is not a JSON object");
    }
    long dataStart = 8 + headerLength;
    long dataSize = fileSize - dataStart;

    Map<String, String> metadata = Map.of();
    List<TensorInfo> entries = new ArrayList<>();
    for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> field = it.next();
      if (field.getKey().equals(METADATA_KEY)) {
        metadata = parseMetadata(path, field.getValue());
      } else {
        entries.add(parseEntry(path, field.getKey(), field.getValue(), dataSize));
      }
    }
    checkLayout(path, entries, dataSize);

    Map<String, TensorInfo> byName = new LinkedHashMap<>();
    for (TensorInfo info : entries) {
      byName.put(info.name(), info);
    }
    return new SafeTensorsFile(
        path, channel, dataStart, metadata, Collections.unmodifiableMap(byName));
  }

  private static Map<String, String> parseMetadata(Path path, JsonNode node) {
    if (!node.isObject()) {
      throw new SafeTensorsException(
          path + ": " + METADATA_KEY + " must be an object of strings, found " + node.getNodeType());
    }
    Map<String, String> metadata = new LinkedHashMap<>();
    for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      if (!e.getValue().isTextual()) {
        throw new SafeTensorsException(
            path
                + ": "
                + METADATA_KEY
                + " value for key '"
                + e.getKey()
                + "' must be a string, found "
                + e.getValue().getNodeType());
      }
      metadata.put(e.getKey(), e.getValue().textValue());
    }
    return Collections.unmodifiableMap(metadata);
  }

  /** Validates one tensor entry on its own: fields, dtype, shape, byte count, bounds. */
  private static TensorInfo parseEntry(Path path, String name, JsonNode node, long dataSize) {
    String where = path + ": tensor '" + name + "'";
    if (!node.isObject()) {
      throw new SafeTensorsException(where + ": entry must be an object, found " + node.getNodeType());
    }
    for (Iterator<String> it = node.fieldNames(); it.hasNext(); ) {
      String field = it.next();
      if (!ENTRY_FIELDS.contains(field)) {
        throw new SafeTensorsException(where + ": unexpected field '" + field + "'");
      }
    }
    for (String field : List.of("dtype", "shape", "data_offsets")) {
      if (!node.has(field)) {
        throw new SafeTensorsException(where + ": missing '" + field + "'");
      }
    }
    JsonNode dtypeNode = node.get("dtype");
    if (!dtypeNode.isTextual()) {
      throw new SafeTensorsException(where + ": 'dtype' must be a string");
    }
    DType dtype = DType.fromName(dtypeNode.textValue());
    if (dtype == null) {
      throw new SafeTensorsException(
          where
              + ": unsupported dtype '"
              + dtypeNode.textValue()
              + "' (supported: "
              + List.of(DType.values())
              + ")");
    }
    List<Long> shape = nonNegativeLongs(where, "shape", node.get("shape"));
    List<Long> offsets = nonNegativeLongs(where, "data_offsets", node.get("data_offsets"));
    if (offsets.size() != 2) {
      throw new SafeTensorsException(
          where + ": 'data_offsets' must be [begin, end], found " + offsets.size() + " numbers");
    }
    long begin = offsets.get(0);
    long end = offsets.get(1);
    if (begin > end) {
      throw new SafeTensorsException(
          where + ": data_offsets [" + begin + ", " + end + "] end before they begin");
    }
    long numel = 1;
    long bytes;
    try {
      for (long d : shape) {
        numel = Math.multiplyExact(numel, d);
      }
      bytes = Math.multiplyExact(numel, dtype.byteSize());
    } catch (ArithmeticException e) {
      throw new SafeTensorsException(
          where + ": shape " + shape + " of " + dtype + " is too large (size overflows 64 bits)", e);
    }
    if (end - begin != bytes) {
      throw new SafeTensorsException(
          where
              + ": data_offsets ["
              + begin
              + ", "
              + end
              + "] hold "
              + (end - begin)
              + " bytes but shape "
              + shape
              + " of "
              + dtype
              + " needs "
              + bytes);
    }
    if (end > dataSize) {
      throw new SafeTensorsException(
          where
              + ": data ends at byte "
              + end
              + " but the data section has only "
              + dataSize
              + " bytes (truncated file?)");
    }
    return new TensorInfo(name, dtype, shape, begin, end);
  }

  private static List<Long> nonNegativeLongs(String where, String field, JsonNode node) {
    if (!node.isArray()) {
      throw new SafeTensorsException(where + ": '" + field + "' must be an array of integers");
    }
    List<Long> values = new ArrayList<>(node.size());
    for (JsonNode v : node) {
      if (!v.isIntegralNumber()) {
        throw new SafeTensorsException(
            where + ": '" + field + "' must hold integers, found " + v);
      }
      if (!v.canConvertToLong()) {
        throw new SafeTensorsException(where + ": '" + field + "' value " + v + " is out of range");
      }
      if (v.longValue() < 0) {
        throw new SafeTensorsException(where + ": '" + field + "' has negative value " + v);
      }
      values.add(v.longValue());
    }
    return values;
  }

  /**
   * The tensors, sorted by offset, must tile the data section exactly: no two share bytes, and
   * no byte is unaccounted for (the reference loader rejects both, so a file we accept loads in
   * Python too, and a file with hidden bytes cannot slip through).
   */
  private static void checkLayout(Path path, List<TensorInfo> entries, long dataSize) {
    entries.sort(Comparator.comparingLong(TensorInfo::begin).thenComparingLong(TensorInfo::end));
    long covered = 0;
    TensorInfo previous = null;
    for (TensorInfo info : entries) {
      if (info.begin() < covered) {
        throw new SafeTensorsException(
            path
                + ": tensor '"
                + info.name()
                + "' data ["
                + info.begin()
                + ", "
                + info.end()
                + ") overlaps tensor '"
                + previous.name()
                + "' ["
                + previous.begin()
                + ", "
                + previous.end()
                + ")");
      }
      if (info.begin() > covered) {
        throw new SafeTensorsException(
            path
                + ": tensor '"
                + info.name()
                + "' begins at byte "
                + info.begin()
                + " of the data section, leaving "
                + (info.begin() - covered)
                + " bytes after byte "
                + covered
                + " that belong to no tensor");
      }
      covered = info.end();
      previous = info;
    }
    if (covered != dataSize) {
      throw new SafeTensorsException(
          path
              + ": "
              + (dataSize - covered)
              + " bytes at the end of the data section belong to no tensor (tensors cover "
              + covered
              + " of "
              + dataSize
              + " bytes)");
    }
  }

  /** @return the file this was opened from */
  public Path path() {
    return path;
  }

  /** @return the {@code __metadata__} entries in header order; empty when there are none */
  public Map<String, String> metadata() {
    return metadata;
  }

  /** @return every tensor, in the order of their data in the file */
  public Collection<TensorInfo> tensors() {
    return tensors.values();
  }

  /** @return the tensor names, in the order of their data in the file */
  public Set<String> names() {
    return tensors.keySet();
  }

  /**
   * @param name a tensor name
   * @return whether the file holds that tensor
   */
  public boolean has(String name) {
    return tensors.containsKey(name);
  }

  /**
   * @param name a tensor name
   * @return its header entry
   * @throws SafeTensorsException naming the file and tensor when there is no such tensor
   */
  public TensorInfo info(String name) {
    TensorInfo info = tensors.get(name);
    if (info == null) {
      throw new SafeTensorsException(path + ": no tensor '" + name + "' in this file");
    }
    return info;
  }

  /**
   * Reads a tensor's raw bytes (little-endian elements, row-major), whatever its dtype.
   *
   * @param name a tensor name
   * @return a new array of {@link TensorInfo#byteLength()} bytes
   * @throws SafeTensorsException when the tensor is missing, larger than a Java array, or the
   *     read fails
   */
  public byte[] readBytes(String name) {
    TensorInfo info = info(name);
    if (info.byteLength() > MAX_ARRAY_LENGTH) {
      throw new SafeTensorsException(
          path
              + ": tensor '"
              + name
              + "' has "
              + info.byteLength()
              + " bytes, more than a Java array can hold ("
              + MAX_ARRAY_LENGTH
              + ")");
    }
    byte[] out = new byte[(int) info.byteLength()];
    long position = dataStart + info.begin();
    for (int off = 0; off < out.length; off += CHUNK_BYTES) {
      int len = Math.min(CHUNK_BYTES, out.length - off);
      read(info, ByteBuffer.wrap(out, off, len), position + off);
    }
    return out;
  }

  /**
   * Reads a tensor's raw bytes (little-endian elements, row-major) into {@code target} at its
   * position, which advances by {@link TensorInfo#byteLength()}. With a direct buffer (e.g. a
   * view of an NDArray's memory) the bytes go from the file into native memory with no Java
   * array in between and no limit of 2 GiB per tensor.
   *
   * @param name a tensor name
   * @param target where the bytes go; needs {@code byteLength()} remaining
   * @throws SafeTensorsException when the tensor is missing, {@code target} is too small, or
   *     the read fails
   */
  public void readBytesInto(String name, ByteBuffer target) {
    TensorInfo info = info(name);
    if (target.remaining() < info.byteLength()) {
      throw new SafeTensorsException(
          path + ": tensor '" + name + "' has " + info.byteLength()
              + " bytes but the target buffer has room for " + target.remaining());
    }
    ByteBuffer window = target.duplicate();
    window.limit(window.position() + (int) info.byteLength());
    read(info, window, dataStart + info.begin());
    target.position(window.position());
  }

  /**
   * Reads {@code target.remaining()} bytes of a tensor's data from byte {@code offset} of it
   * into {@code target} (a part of a large tensor, e.g. to convert it in chunks).
   *
   * @throws SafeTensorsException when the range is outside the tensor or the read fails
   */
  public void readBytesInto(String name, long offset, ByteBuffer target) {
    TensorInfo info = info(name);
    if (offset < 0 || offset + target.remaining() > info.byteLength()) {
      throw new SafeTensorsException(
          path + ": bytes [" + offset + ", " + (offset + target.remaining()) + ") are outside"
              + " tensor '" + name + "' (" + info.byteLength() + " bytes)");
    }
    read(info, target, dataStart + info.begin() + offset);
  }

  /**
   * Reads a floating-point tensor as float32 values. F32 and the 16-bit formats convert exactly;
   * F64 rounds to the nearest float.
   *
   * @param name a tensor name
   * @return a new array of {@link TensorInfo#numel()} values, row-major
   * @throws SafeTensorsException when the tensor is missing, not floating point, has more
   *     elements than a Java array can hold, or the read fails
   */
  public float[] readFloat32(String name) {
    TensorInfo info = info(name);
    requireFloatingPoint(info);
    if (info.numel() > MAX_ARRAY_LENGTH) {
      throw new SafeTensorsException(
          path
              + ": tensor '"
              + name
              + "' has "
              + info.numel()
              + " elements, more than a Java array can hold ("
              + MAX_ARRAY_LENGTH
              + ")");
    }
    float[] out = new float[(int) info.numel()];
    readFloat32Into(name, FloatBuffer.wrap(out));
    return out;
  }

  /**
   * Reads a floating-point tensor as float32 values into {@code target} at its position, which
   * advances by {@link TensorInfo#numel()}. Use a direct buffer to fill native memory (e.g. for
   * an NDArray) without an intermediate {@code float[]}.
   *
   * @param name a tensor name
   * @param target where the values go; needs {@code numel()} remaining
   * @throws SafeTensorsException when the tensor is missing, not floating point, {@code target}
   *     is too small, or the read fails
   */
  public void readFloat32Into(String name, FloatBuffer target) {
    TensorInfo info = info(name);
    requireFloatingPoint(info);
    if (target.remaining() < info.numel()) {
      throw new SafeTensorsException(
          path
              + ": tensor '"
              + name
              + "' has "
              + info.numel()
              + " elements but the target buffer has room for "
              + target.remaining());
    }
    int elementSize = info.dtype().byteSize();
    // A whole number of elements per chunk (CHUNK_BYTES is a multiple of every element size).
    ByteBuffer chunk =
        ByteBuffer.allocate((int) Math.min(CHUNK_BYTES, info.byteLength()))
            .order(ByteOrder.LITTLE_ENDIAN);
    long position = dataStart + info.begin();
    long remaining = info.byteLength();
    while (remaining > 0) {
      chunk.clear();
      chunk.limit((int) Math.min(chunk.capacity(), remaining));
      read(info, chunk, position);
      chunk.flip();
      position += chunk.limit();
      remaining -= chunk.limit();
      convert(info.dtype(), chunk, target, chunk.limit() / elementSize);
    }
  }

  private static void convert(DType dtype, ByteBuffer src, FloatBuffer dst, int count) {
    switch (dtype) {
      case F32 -> dst.put(src.asFloatBuffer());
      case BF16 -> {
        for (int i = 0; i < count; i++) {
          dst.put(HalfFloats.bf16ToFloat(src.getShort(2 * i)));
        }
      }
      case F16 -> {
        for (int i = 0; i < count; i++) {
          dst.put(HalfFloats.halfToFloat(src.getShort(2 * i)));
        }
      }
      case F64 -> {
        for (int i = 0; i < count; i++) {
          dst.put((float) src.getDouble(8 * i));
        }
      }
      default -> throw new IllegalStateException("not a float dtype: " + dtype);
    }
  }

  private void requireFloatingPoint(TensorInfo info) {
    if (!info.dtype().isFloatingPoint()) {
      throw new SafeTensorsException(
          path
              + ": tensor '"
              + info.name()
              + "' has dtype "
              + info.dtype()
              + ", which cannot be read as float32 (use readBytes)");
    }
  }

  private void read(TensorInfo info, ByteBuffer target, long position) {
    try {
      readFully(path, channel, target, position, "tensor '" + info.name() + "'");
    } catch (ClosedChannelException e) {
      throw new SafeTensorsException(
          path + ": cannot read tensor '" + info.name() + "': the file has been closed", e);
    } catch (IOException e) {
      throw new SafeTensorsException(path + ": cannot read tensor '" + info.name() + "': " + e, e);
    }
  }

  /**
   * The data of the tensors {@code names}, which must lie back to back in this order, as one
   * private (copy-on-write) memory mapping of the file, little-endian: the pages are the page
   * cache's own until written, and a write through the mapping changes only this process's copy,
   * never the file. Null when that is not possible: the tensors are not adjacent, the first is
   * not aligned to its element size in the file, the range exceeds 2 GiB (one Java mapping), or
   * the file cannot be opened for writing (Java maps privately only through a writable channel;
   * nothing is written through it), as on a read-only file system. The mapping lasts as long as the
   * returned buffer is reachable, whatever happens to this object; anything that aliases its
   * memory must keep it so. A file replaced by a rename keeps its mapped inode; one rewritten in
   * place while mapped would fault the process (SIGBUS), as with every memory-mapped loader.
   */
  public java.nio.MappedByteBuffer mapPrivate(List<String> names) {
    long begin = info(names.get(0)).begin();
    long end = begin;
    for (String name : names) {
      TensorInfo info = info(name);
      if (info.begin() != end) {
        return null;
      }
      end = info.end();
    }
    long position = dataStart + begin;
    // Aligned to the element size, so the tensor over the mapping is (the page is aligned).
    if (position % info(names.get(0)).dtype().byteSize() != 0 || end - begin > Integer.MAX_VALUE
        || end == begin) {
      return null;
    }
    try (FileChannel writable = FileChannel.open(path, StandardOpenOption.READ,
        StandardOpenOption.WRITE)) {
      java.nio.MappedByteBuffer map = writable.map(FileChannel.MapMode.PRIVATE, position,
          end - begin);
      map.order(ByteOrder.LITTLE_ENDIAN);
      return map;
    } catch (IOException | UnsupportedOperationException | SecurityException e) {
      return null;
    }
  }

  /** Positional reads (thread-safe on a shared channel) until the buffer is full. */
  private static void readFully(
      Path path, FileChannel channel, ByteBuffer target, long position, String what)
      throws IOException {
    long at = position;
    while (target.hasRemaining()) {
      int n = channel.read(target, at);
      if (n < 0) {
        throw new SafeTensorsException(
            path + ": unexpected end of file at byte " + at + " while reading " + what
                + " (file truncated or changed since it was opened?)");
      }
      at += n;
    }
  }

  private static void closeQuietly(FileChannel channel, Throwable primary) {
    try {
      channel.close();
    } catch (IOException e) {
      primary.addSuppressed(e);
    }
  }

  /** Releases the file handle; reads after this fail with a {@link SafeTensorsException}. */
  @Override
  public void close() {
    try {
      channel.close();
    } catch (IOException e) {
      throw new SafeTensorsException(path + ": cannot close: " + e, e);
    }
  }

  @Override
  public String toString() {
    return "SafeTensorsFile[" + path + ", " + tensors.size() + " tensors]";
  }
}
