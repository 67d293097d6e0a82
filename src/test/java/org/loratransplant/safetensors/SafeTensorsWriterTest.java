package org.loratransplant.safetensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.loratransplant.safetensors.Fixtures.assertFails;
import static org.loratransplant.safetensors.Fixtures.sharedFile;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The writer: byte compatibility with the Python library, round trips, atomic replacement. */
class SafeTensorsWriterTest {
  @TempDir Path dir;

  /**
   * Files written by the real Python safetensors library (via peft and transformers), rewritten
   * from their parsed tensors and metadata, must come out byte for byte the same.
   */
  @ParameterizedTest(name = "{0}")
  @ValueSource(
      strings = {
        "fixtures/hf-reference/peft-tiny-llama3-lora/adapter_model.safetensors",
        "fixtures/hf-reference/tiny-llama3/model.safetensors",
        "fixtures/hf-reference/tiny-llama-f16/model.safetensors",
        "fixtures/hf-reference/tiny-llama-bf16/model-00001-of-00002.safetensors",
        "fixtures/hf-reference/tiny-llama-bf16/model-00002-of-00002.safetensors",
        "fixtures/hf-reference/tiny-mistral/model.safetensors",
        "fixtures/hf-reference/tiny-qwen2/model.safetensors",
      })
  void rewritesPythonWrittenFilesByteForByte(String relative) throws IOException {
    Path original = sharedFile(relative);
    Map<String, TensorData> tensors = new LinkedHashMap<>();
    Map<String, String> metadata;
    try (SafeTensorsFile f = SafeTensorsFile.open(original)) {
      metadata = f.metadata();
      // Insert in reverse so that the output order cannot come from the input order.
      List<TensorInfo> infos = new ArrayList<>(f.tensors());
      Collections.reverse(infos);
      for (TensorInfo t : infos) {
        tensors.put(t.name(), new TensorData(t.dtype(), t.shape(), f.readBytes(t.name())));
      }
    }
    Path copy = dir.resolve("copy.safetensors");
    SafeTensorsWriter.write(copy, tensors, metadata);
    byte[] expected = Files.readAllBytes(original);
    byte[] actual = Files.readAllBytes(copy);
    assertEquals(expected.length, actual.length, "file length");
    assertArrayEquals(expected, actual);
  }

  /**
   * Byte-exact expectations from the reference implementation's own unit tests (safetensors
   * crate, tensor.rs: test_serialization, test_empty, test_serialization_forced_alignement).
   */
  @Test
  void matchesTheReferenceImplementationsGoldenBytes() throws IOException {
    float[] values = {0, 1, 2, 3, 4, 5};
    Path file = dir.resolve("golden.safetensors");
    SafeTensorsWriter.write(
        file, Map.of("attn.0", TensorData.ofFloat32(new long[] {1, 2, 3}, values)), null);
    int[] serialization = {
      64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100, 116, 121,
      112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58, 91, 49, 44, 50,
      44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115, 101, 116, 115, 34, 58, 91, 48,
      44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128,
      64, 0, 0, 160, 64
    };
    byte[] expected = new byte[serialization.length];
    for (int i = 0; i < expected.length; i++) {
      expected[i] = (byte) serialization[i];
    }
    assertArrayEquals(expected, Files.readAllBytes(file));

    assertEquals(
        "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}       ",
        written(Map.of("attn0", TensorData.ofFloat32(new long[] {1, 1, 2, 3}, values)), null, 24));
    assertEquals("{}      ", written(Map.of(), null, 0));
    assertEquals(
        "{\"__metadata__\":{\"framework\":\"pt\"}}     ",
        written(Map.of(), Map.of("framework", "pt"), 0));
  }

  /**
   * The data section is ordered as the reference {@code prepare} sorts: dtype by its position in
   * the Rust {@code Dtype} enum, descending (I64 above F64!), then name by UTF-8 bytes; the
   * header follows the same order.
   */
  @Test
  void ordersByReferenceDtypeRankThenNameBytes() throws IOException {
    Map<String, TensorData> tensors = new LinkedHashMap<>();
    tensors.put("bool", TensorData.of(DType.BOOL, new long[] {1}, new byte[1]));
    tensors.put("u8", TensorData.of(DType.U8, new long[] {1}, new byte[1]));
    tensors.put("i8", TensorData.of(DType.I8, new long[] {1}, new byte[1]));
    tensors.put("i16", TensorData.of(DType.I16, new long[] {1}, new byte[2]));
    tensors.put("f16", TensorData.of(DType.F16, new long[] {1}, new byte[2]));
    tensors.put("bf16", TensorData.of(DType.BF16, new long[] {1}, new byte[2]));
    tensors.put("i32", TensorData.of(DType.I32, new long[] {1}, new byte[4]));
    tensors.put("f32", TensorData.of(DType.F32, new long[] {1}, new byte[4]));
    tensors.put("f64", TensorData.of(DType.F64, new long[] {1}, new byte[8]));
    tensors.put("i64", TensorData.of(DType.I64, new long[] {1}, new byte[8]));
    // Same dtype: bytewise name order. 'B' < 'a'; U+FFFD (EF BF BD) < U+1F600 (F0 9F 98 80),
    // although Java's String.compareTo puts the surrogate pair (D83D...) first.
    tensors.put("a", TensorData.of(DType.U8, new long[] {}, new byte[1]));
    tensors.put("B", TensorData.of(DType.U8, new long[] {}, new byte[1]));
    tensors.put("\ud83d\ude00", TensorData.of(DType.U8, new long[] {}, new byte[1]));
    tensors.put("\ufffd", TensorData.of(DType.U8, new long[] {}, new byte[1]));
    Path file = dir.resolve("order.safetensors");
    SafeTensorsWriter.write(file, tensors, null);
    try (SafeTensorsFile f = SafeTensorsFile.open(file)) {
      List<String> order = f.tensors().stream().map(TensorInfo::name).toList();
      assertEquals(
          List.of("i64", "f64", "f32", "i32", "bf16", "f16", "i16", "i8", "B", "a", "u8",
              "\ufffd", "\ud83d\ude00", "bool"),
          order);
    }
    String header = headerOf(file);
    assertTrue(header.startsWith("{\"i64\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]},"
        + "\"f64\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[8,16]},"), header);
    assertTrue(header.contains("\"B\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[31,32]}"), header);
  }

  @Test
  void escapesNamesAsSerdeJsonAndRoundTrips() throws IOException {
    String name = "q\"uote\\back\nnl\ttab\u0001ctl\u001fé/ß\u007f";
    Path file = dir.resolve("names.safetensors");
    SafeTensorsWriter.write(
        file,
        Map.of(name, TensorData.ofFloat32(new long[] {1}, new float[] {2.5f})),
        Map.of("note", "line1\nline2 \"q\""));
    String header = headerOf(file);
    assertTrue(
        header.contains("\"q\\\"uote\\\\back\\nnl\\ttab\\u0001ctl\\u001fé/ß\u007f\""), header);
    assertTrue(header.contains("\"note\":\"line1\\nline2 \\\"q\\\"\""), header);
    try (SafeTensorsFile f = SafeTensorsFile.open(file)) {
      assertArrayEquals(new float[] {2.5f}, f.readFloat32(name));
      assertEquals("line1\nline2 \"q\"", f.metadata().get("note"));
    }
  }

  @Test
  void roundTripsEveryDtypeAndValue() throws IOException {
    float[] values = {0f, -0f, 1f, -2.5f, 0.1f, 65504f, 1e-7f, 3.4e38f, Float.NEGATIVE_INFINITY};
    long[] shape = {3, 3};
    Map<String, TensorData> tensors = new LinkedHashMap<>();
    tensors.put("f32", TensorData.ofFloat32(shape, values));
    tensors.put("f16", TensorData.ofFloat16(shape, values));
    tensors.put("bf16", TensorData.ofBFloat16(shape, values));
    ByteBuffer f64 = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putDouble(Math.PI).putDouble(-1);
    tensors.put("f64", TensorData.of(DType.F64, new long[] {2}, f64.array()));
    for (DType t : List.of(DType.I64, DType.I32, DType.I16, DType.I8, DType.U8, DType.BOOL)) {
      tensors.put(t.name().toLowerCase(java.util.Locale.ROOT),
          TensorData.of(t, new long[] {2, 1}, Fixtures.counting(2 * t.byteSize())));
    }
    tensors.put("scalar", TensorData.ofFloat32(new long[] {}, new float[] {42f}));
    tensors.put("empty", TensorData.ofFloat32(new long[] {0, 5}, new float[0]));
    Map<String, String> metadata = Map.of("format", "pt", "step", "7");
    Path file = dir.resolve("all.safetensors");
    SafeTensorsWriter.write(file, tensors, metadata);

    try (SafeTensorsFile f = SafeTensorsFile.open(file)) {
      assertEquals(metadata, f.metadata());
      assertEquals(tensors.keySet(), Set.copyOf(f.names()));
      for (Map.Entry<String, TensorData> e : tensors.entrySet()) {
        TensorInfo info = f.info(e.getKey());
        assertEquals(e.getValue().dtype(), info.dtype(), e.getKey());
        assertEquals(e.getValue().shape(), info.shape(), e.getKey());
        assertArrayEquals(e.getValue().data(), f.readBytes(e.getKey()), e.getKey());
      }
      assertArrayEquals(values, f.readFloat32("f32"));
      float[] half = f.readFloat32("f16");
      float[] bf16 = f.readFloat32("bf16");
      for (int i = 0; i < values.length; i++) {
        assertEquals(HalfFloats.halfToFloat(HalfFloats.floatToHalf(values[i])), half[i]);
        assertEquals(HalfFloats.bf16ToFloat(HalfFloats.floatToBf16(values[i])), bf16[i]);
      }
      assertEquals(65504f, half[5]);
      assertEquals(Float.POSITIVE_INFINITY, half[7]); // 3.4e38 overflows F16
      assertArrayEquals(new float[] {(float) Math.PI, -1f}, f.readFloat32("f64"));
      assertArrayEquals(new float[] {42f}, f.readFloat32("scalar"));
      assertEquals(0, f.readFloat32("empty").length);
    }
  }

  @Test
  void tensorDataRefusesBytesThatDoNotMatchItsShape() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> TensorData.of(DType.F32, new long[] {2, 3}, new byte[20]));
    assertTrue(e.getMessage().contains("needs 24 bytes, got 20"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class,
        () -> TensorData.ofFloat32(new long[] {2, 3}, new float[5]));
    assertTrue(e.getMessage().contains("6 elements, got 5"), e.getMessage());
    assertThrows(IllegalArgumentException.class,
        () -> TensorData.of(DType.U8, new long[] {-1}, new byte[0]));
    assertThrows(IllegalArgumentException.class,
        () -> TensorData.of(DType.U8, new long[] {1L << 40, 1L << 40}, new byte[0]));
  }

  /** A write refused during validation leaves the old file as it was and no temporary file. */
  @Test
  void refusedWriteLeavesOldFileIntact() throws IOException {
    Path target = dir.resolve("model.safetensors");
    SafeTensorsWriter.write(target, Map.of("w", TensorData.ofFloat32(new long[] {2}, new float[] {1, 2})), null);
    byte[] before = Files.readAllBytes(target);

    Map<String, TensorData> reserved = new LinkedHashMap<>();
    reserved.put("ok", TensorData.ofFloat32(new long[] {1}, new float[] {3}));
    reserved.put("__metadata__", TensorData.ofFloat32(new long[] {1}, new float[] {4}));
    assertFails(() -> SafeTensorsWriter.write(target, reserved, null), target.toString(), "reserved");

    Map<String, TensorData> loneSurrogate = Map.of("bad\ud800name", TensorData.ofFloat32(new long[] {1}, new float[] {3}));
    assertFails(() -> SafeTensorsWriter.write(target, loneSurrogate, null), target.toString(), "not valid Unicode");

    assertArrayEquals(before, Files.readAllBytes(target));
    assertEquals(List.of(target), list(dir));
  }

  /**
   * A write that fails after the temporary file is complete (the final rename fails because the
   * target is a non-empty directory) removes the temporary file and leaves the target untouched.
   */
  @Test
  void failedRenameRemovesTheTemporaryFile() throws IOException {
    Path target = Files.createDirectory(dir.resolve("model.safetensors"));
    Path inside = Files.writeString(target.resolve("keep.txt"), "keep");
    assertFails(
        () -> SafeTensorsWriter.write(target, Map.of("w", TensorData.ofFloat32(new long[] {1}, new float[] {1})), null),
        target.toString(), "write failed", "previous file left unchanged");
    assertEquals(List.of(target), list(dir));
    assertEquals("keep", Files.readString(inside));
  }

  @Test
  void overwriteReplacesContentWithOrdinaryPermissions() throws IOException {
    Path target = dir.resolve("adapter.safetensors");
    SafeTensorsWriter.write(target, Map.of("a", TensorData.ofFloat32(new long[] {1}, new float[] {1})), null);
    SafeTensorsWriter.write(target, Map.of("b", TensorData.ofFloat32(new long[] {2}, new float[] {5, 6})), null);
    try (SafeTensorsFile f = SafeTensorsFile.open(target)) {
      assertEquals(Set.of("b"), f.names());
      assertArrayEquals(new float[] {5, 6}, f.readFloat32("b"));
    }
    assertEquals(List.of(target), list(dir));
    // Not the owner-only permissions a JDK temp file would have: like any new file here.
    Path plain = Files.createFile(dir.resolve("plain"));
    Set<PosixFilePermission> expected = Files.getPosixFilePermissions(plain);
    assertEquals(expected, Files.getPosixFilePermissions(target));
  }

  @Test
  void refusesMissingDirectory() {
    Path target = dir.resolve("no/such/dir/x.safetensors");
    assertFails(() -> SafeTensorsWriter.write(target, Map.of(), null), target.toString(), "does not exist");
  }

  /** Writes, checks the length prefix and data size, and returns the header bytes. */
  private String written(Map<String, TensorData> tensors, Map<String, String> metadata, int dataBytes)
      throws IOException {
    Path file = dir.resolve("golden.safetensors");
    SafeTensorsWriter.write(file, tensors, metadata);
    byte[] bytes = Files.readAllBytes(file);
    long n = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
    assertEquals(bytes.length, 8 + n + dataBytes);
    return new String(bytes, 8, (int) n, StandardCharsets.UTF_8);
  }

  private static String headerOf(Path file) throws IOException {
    byte[] bytes = Files.readAllBytes(file);
    long n = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
    return new String(bytes, 8, (int) n, StandardCharsets.UTF_8);
  }

  private static List<Path> list(Path dir) throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      return s.sorted().toList();
    }
  }
}
