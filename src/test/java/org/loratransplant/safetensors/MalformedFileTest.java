package org.loratransplant.safetensors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.loratransplant.safetensors.Fixtures.assertFails;
import static org.loratransplant.safetensors.Fixtures.counting;
import static org.loratransplant.safetensors.Fixtures.rawFile;
import static org.loratransplant.safetensors.Fixtures.write;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every file here is built by the test. Each must be refused with a {@link SafeTensorsException}
 * whose message names the file, the tensor where one is involved, and the problem.
 */
class MalformedFileTest {
  @TempDir Path dir;

  private static String entry(String name, String dtype, String shape, String offsets) {
    return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape
        + ",\"data_offsets\":" + offsets + "}";
  }

  /** Header, data size, and the fragments the message must contain besides the file name. */
  static Stream<Arguments> badHeaders() {
    String ok = entry("ok", "F32", "[2]", "[0,8]");
    return Stream.of(
        Arguments.of("unknown dtype", "{" + entry("w", "Q4_K", "[2]", "[0,8]") + "}", 8,
            new String[] {"'w'", "unsupported dtype 'Q4_K'"}),
        Arguments.of("unsupported real dtype", "{" + entry("w", "F8_E4M3", "[8]", "[0,8]") + "}", 8,
            new String[] {"'w'", "unsupported dtype 'F8_E4M3'"}),
        Arguments.of("dtype is case-sensitive", "{" + entry("w", "f32", "[2]", "[0,8]") + "}", 8,
            new String[] {"'w'", "unsupported dtype 'f32'"}),
        Arguments.of("overlapping offsets",
            "{" + entry("a", "F32", "[4]", "[0,16]") + "," + entry("b", "F32", "[4]", "[8,24]") + "}",
            24, new String[] {"'b'", "overlaps tensor 'a'"}),
        Arguments.of("identical offsets",
            "{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("b", "F32", "[2]", "[0,8]") + "}",
            8, new String[] {"'b'", "overlaps tensor 'a'"}),
        Arguments.of("offsets outside the file", "{" + entry("w", "F32", "[4]", "[0,16]") + "}", 8,
            new String[] {"'w'", "ends at byte 16", "only 8 bytes"}),
        Arguments.of("shape x dtype != bytes", "{" + entry("w", "F32", "[2,2]", "[0,12]") + "}", 12,
            new String[] {"'w'", "hold 12 bytes", "[2, 2] of F32 needs 16"}),
        Arguments.of("missing data_offsets",
            "{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}," + ok + "}", 8,
            new String[] {"'w'", "missing 'data_offsets'"}),
        Arguments.of("missing shape", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8,
            new String[] {"'w'", "missing 'shape'"}),
        Arguments.of("missing dtype", "{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
            new String[] {"'w'", "missing 'dtype'"}),
        Arguments.of("unexpected field",
            "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"offsets\":[0,8]}}", 8,
            new String[] {"'w'", "unexpected field 'offsets'"}),
        Arguments.of("entry not an object", "{\"w\":[1,2]}", 0,
            new String[] {"'w'", "must be an object"}),
        Arguments.of("negative dimension", "{" + entry("w", "F32", "[-2]", "[0,8]") + "}", 8,
            new String[] {"'w'", "negative value -2"}),
        Arguments.of("fractional dimension", "{" + entry("w", "F32", "[2.0]", "[0,8]") + "}", 8,
            new String[] {"'w'", "must hold integers"}),
        Arguments.of("dimension beyond 64 bits",
            "{" + entry("w", "F32", "[36893488147419103232]", "[0,8]") + "}", 8,
            new String[] {"'w'", "out of range"}),
        Arguments.of("three offsets", "{" + entry("w", "F32", "[2]", "[0,8,8]") + "}", 8,
            new String[] {"'w'", "[begin, end]"}),
        Arguments.of("reversed offsets", "{" + entry("w", "U8", "[0]", "[8,0]") + "," + ok + "}", 8,
            new String[] {"'w'", "end before they begin"}),
        Arguments.of("gap between tensors",
            "{" + entry("a", "F32", "[1]", "[0,4]") + "," + entry("b", "F32", "[1]", "[8,12]") + "}",
            12, new String[] {"'b'", "belong to no tensor"}),
        Arguments.of("trailing bytes", "{" + ok + "}", 12,
            new String[] {"4 bytes at the end", "belong to no tensor"}),
        Arguments.of("metadata not an object", "{\"__metadata__\":\"pt\"," + ok + "}", 8,
            new String[] {"__metadata__ must be an object"}),
        Arguments.of("metadata value not a string",
            "{\"__metadata__\":{\"format\":\"pt\",\"step\":3}," + ok + "}", 8,
            new String[] {"key 'step'", "must be a string"}),
        Arguments.of("not JSON", "{not json at all}", 0, new String[] {"not valid JSON"}),
        Arguments.of("trailing tokens after the object", "{" + ok + "} {}", 8,
            new String[] {"not valid JSON"}),
        Arguments.of("duplicate key",
            "{" + entry("w", "F32", "[2]", "[0,8]") + "," + entry("w", "F32", "[2]", "[8,16]") + "}",
            16, new String[] {"not valid JSON", "Duplicate field 'w'"}),
        Arguments.of("does not start with {", " {" + ok + "}", 8,
            new String[] {"does not start with '{'"}),
        Arguments.of("JSON array header", "[1,2]", 0, new String[] {"does not start with '{'"}));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("badHeaders")
  void refusesMalformedHeader(String description, String header, int dataBytes, String[] expected)
      throws IOException {
    Path file = write(dir, "bad.safetensors", rawFile(header, counting(dataBytes)));
    String[] withFile = Arrays.copyOf(expected, expected.length + 1);
    withFile[expected.length] = file.toString();
    assertFails(() -> SafeTensorsFile.open(file), withFile);
  }

  @Test
  void refusesFileShorterThanEightBytes() throws IOException {
    Path file = write(dir, "tiny.safetensors", new byte[] {1, 0, 0, 0, 0});
    assertFails(() -> SafeTensorsFile.open(file), file.toString(), "5 bytes", "shorter than");
  }

  @Test
  void refusesTruncatedData() throws IOException {
    byte[] whole = rawFile("{" + entry("w", "F32", "[4]", "[0,16]") + "}", counting(16));
    Path file = write(dir, "cut.safetensors", Arrays.copyOf(whole, whole.length - 3));
    assertFails(() -> SafeTensorsFile.open(file), file.toString(), "'w'", "truncated");
  }

  @Test
  void refusesHeaderLengthLargerThanFile() throws IOException {
    byte[] content = rawFile("{}", new byte[0]);
    ByteBuffer.wrap(content).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 1000);
    Path file = write(dir, "short.safetensors", content);
    assertFails(() -> SafeTensorsFile.open(file), file.toString(), "header length 1000",
        "larger than the 2 bytes");
  }

  @Test
  void refusesHostileHeaderLengthWithoutAllocating() throws IOException {
    byte[] content = rawFile("{}", new byte[0]);
    ByteBuffer.wrap(content).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 1L << 62);
    Path file = write(dir, "huge-header.safetensors", content);
    long allocated = allocatedBy(() -> assertFails(() -> SafeTensorsFile.open(file),
        file.toString(), "header length " + (1L << 62), "exceeds the limit"));
    assertTrue(allocated < (16 << 20), "allocated " + allocated + " bytes");
  }

  @Test
  void readsHeaderLengthAsUnsigned() throws IOException {
    byte[] content = rawFile("{}", new byte[0]);
    ByteBuffer.wrap(content).order(ByteOrder.LITTLE_ENDIAN).putLong(0, -1L);
    Path file = write(dir, "max-header.safetensors", content);
    assertFails(() -> SafeTensorsFile.open(file), file.toString(), "18446744073709551615",
        "exceeds the limit");
  }

  /** [2^40, 2^40] elements: the count overflows 64 bits. */
  @Test
  void refusesHostileShapeWithoutAllocating() throws IOException {
    String header = "{" + entry("evil", "F32", "[1099511627776,1099511627776]", "[0,8]") + "}";
    Path file = write(dir, "evil.safetensors", rawFile(header, counting(8)));
    long allocated = allocatedBy(() -> assertFails(() -> SafeTensorsFile.open(file),
        file.toString(), "'evil'", "too large"));
    assertTrue(allocated < (16 << 20), "allocated " + allocated + " bytes");
  }

  /** 2^62 elements fit a long, their 2^64 bytes do not. */
  @Test
  void refusesShapeWhoseByteSizeOverflows() throws IOException {
    String header = "{" + entry("evil", "F32", "[4611686018427387904]", "[0,8]") + "}";
    Path file = write(dir, "evil.safetensors", rawFile(header, counting(8)));
    assertFails(() -> SafeTensorsFile.open(file), file.toString(), "'evil'", "too large");
  }

  /**
   * A consistent header promising 8 GiB the file does not have: refused from the header alone,
   * with no attempt to allocate (the test JVM's heap could not hold it).
   */
  @Test
  void refusesHugeTensorBeyondTheFileWithoutAllocating() throws IOException {
    String header = "{" + entry("big", "F32", "[2147483648]", "[0,8589934592]") + "}";
    Path file = write(dir, "big.safetensors", rawFile(header, counting(64)));
    long allocated = allocatedBy(() -> assertFails(() -> SafeTensorsFile.open(file),
        file.toString(), "'big'", "ends at byte 8589934592", "truncated"));
    assertTrue(allocated < (16 << 20), "allocated " + allocated + " bytes");
  }

  @Test
  void refusesInvalidUtf8() throws IOException {
    byte[] header = "{\"w\u00e9\":{}}".getBytes(StandardCharsets.ISO_8859_1); // lone 0xE9
    byte[] content = ByteBuffer.allocate(8 + header.length).order(ByteOrder.LITTLE_ENDIAN)
        .putLong(header.length).put(header).array();
    Path file = write(dir, "latin1.safetensors", content);
    assertFails(() -> SafeTensorsFile.open(file), file.toString(), "not valid UTF-8");
  }

  @Test
  void refusesMissingFileAndDirectory() {
    Path missing = dir.resolve("nope.safetensors");
    assertFails(() -> SafeTensorsFile.open(missing), missing.toString(), "no such file");
    assertFails(() -> SafeTensorsFile.open(dir), dir.toString(), "not a regular file");
  }

  @Test
  void acceptsEmptyFileOfNoTensors() throws IOException {
    Path file = write(dir, "empty.safetensors", rawFile("{}      ", new byte[0]));
    try (SafeTensorsFile f = SafeTensorsFile.open(file)) {
      assertTrue(f.tensors().isEmpty());
      assertTrue(f.metadata().isEmpty());
    }
  }

  @Test
  void acceptsZeroSizedTensorsSharingAnOffset() throws IOException {
    String header = "{" + entry("a", "F32", "[0,4]", "[0,0]") + "," + entry("b", "I64", "[0]", "[0,0]")
        + "," + entry("c", "U8", "[3]", "[0,3]") + "}";
    Path file = write(dir, "zeros.safetensors", rawFile(header, counting(3)));
    try (SafeTensorsFile f = SafeTensorsFile.open(file)) {
      assertEquals(0, f.readFloat32("a").length);
      assertEquals(0, f.info("b").numel());
      assertTrue(Arrays.equals(new byte[] {0, 1, 2}, f.readBytes("c")));
    }
  }

  /** Bytes this thread allocates while running {@code action}. */
  private static long allocatedBy(Runnable action) {
    com.sun.management.ThreadMXBean bean =
        (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
    assertTrue(bean.isThreadAllocatedMemorySupported() && bean.isThreadAllocatedMemoryEnabled());
    long id = Thread.currentThread().getId();
    long before = bean.getThreadAllocatedBytes(id);
    action.run();
    return bean.getThreadAllocatedBytes(id) - before;
  }
}
