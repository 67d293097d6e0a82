package org.loratransplant.safetensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.loratransplant.safetensors.Fixtures.assertBitsEqual;
import static org.loratransplant.safetensors.Fixtures.assertFails;
import static org.loratransplant.safetensors.Fixtures.rawFile;
import static org.loratransplant.safetensors.Fixtures.sharedFile;
import static org.loratransplant.safetensors.Fixtures.write;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Reading real checkpoints written by PyTorch/safetensors, and the read API on small files. */
class SafeTensorsFileTest {
  static final String STORIES = "models/stories260K/model.safetensors";
  static final String TINY_F32 = "fixtures/hf-reference/tiny-llama3/model.safetensors";
  static final String TINY_F16 = "fixtures/hf-reference/tiny-llama-f16/model.safetensors";
  static final String EMBED = "model.embed_tokens.weight";

  @TempDir Path dir;

  @Test
  void opensStories260K() {
    Path path = sharedFile(STORIES);
    try (SafeTensorsFile f = SafeTensorsFile.open(path)) {
      assertEquals(path, f.path());
      assertEquals(Map.of("format", "pt"), f.metadata());
      assertEquals(47, f.tensors().size()); // 5 layers x 9 + embeddings + final norm; lm_head tied
      assertFalse(f.has("lm_head.weight"));

      TensorInfo embed = f.info(EMBED);
      assertEquals(new TensorInfo(EMBED, DType.F32, List.of(512L, 64L), 0, 131072), embed);
      assertEquals(32768, embed.numel());
      assertArrayEquals(new long[] {512, 64}, embed.dims());
      assertEquals(List.of(172L, 64L), f.info("model.layers.4.mlp.gate_proj.weight").shape());
      assertEquals(List.of(64L), f.info("model.norm.weight").shape());

      // File order is data order: offsets increase and tile the data section.
      long expectedBegin = 0;
      for (TensorInfo t : f.tensors()) {
        assertEquals(expectedBegin, t.begin(), t.name());
        expectedBegin = t.end();
      }
      assertEquals(EMBED, f.tensors().iterator().next().name());
    }
  }

  /** Golden values decoded with NumPy from the same file. */
  @Test
  void readsStories260KValues() {
    try (SafeTensorsFile f = SafeTensorsFile.open(sharedFile(STORIES))) {
      float[] embed = f.readFloat32(EMBED);
      assertEquals(512 * 64, embed.length);
      int[] firstRow = {0xbe96e950, 0x3f0fd864, 0x3e33a1f7, 0x3eae5faa};
      for (int i = 0; i < firstRow.length; i++) {
        assertBitsEqual(Float.intBitsToFloat(firstRow[i]), embed[i], "embed[0][" + i + "]");
      }
      assertEquals(-0.16485778987407684f, embed[511 * 64 + 62]);
      assertEquals(-0.424032598733902f, embed[511 * 64 + 63]);
      float[] norm = f.readFloat32("model.norm.weight");
      int[] normBits = {0x401d54ef, 0x3faf046e, 0x3fe00e5c};
      for (int i = 0; i < normBits.length; i++) {
        assertBitsEqual(Float.intBitsToFloat(normBits[i]), norm[i], "norm[" + i + "]");
      }

      // The three read paths agree.
      byte[] raw = f.readBytes(EMBED);
      assertEquals(131072, raw.length);
      float[] decoded = new float[embed.length];
      ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(decoded);
      assertArrayEquals(embed, decoded);
      FloatBuffer direct =
          ByteBuffer.allocateDirect(4 * (embed.length + 1)).order(ByteOrder.nativeOrder())
              .asFloatBuffer();
      direct.put(-7f); // reads go at the buffer's position
      f.readFloat32Into(EMBED, direct);
      assertEquals(embed.length + 1, direct.position());
      direct.flip();
      assertEquals(-7f, direct.get());
      float[] fromDirect = new float[embed.length];
      direct.get(fromDirect);
      assertArrayEquals(embed, fromDirect);
    }
  }

  /**
   * The F16 file holds PyTorch's {@code .half()} of tiny-llama3's F32 weights: decoding it must
   * land within half an F16 ulp (relative 2^-11 for normal values, absolute 2^-25 below), and
   * our own round-to-nearest-even must reproduce PyTorch's bits exactly.
   */
  @Test
  void f16DecodesToTheF32WeightsWithinRounding() {
    try (SafeTensorsFile f32 = SafeTensorsFile.open(sharedFile(TINY_F32));
        SafeTensorsFile f16 = SafeTensorsFile.open(sharedFile(TINY_F16))) {
      assertEquals(f32.names(), f16.names());
      assertEquals(21, f16.names().size());
      for (TensorInfo ref : f32.tensors()) {
        TensorInfo half = f16.info(ref.name());
        assertEquals(DType.F16, half.dtype());
        assertEquals(ref.shape(), half.shape());
        float[] exact = f32.readFloat32(ref.name());
        float[] rounded = f16.readFloat32(ref.name());
        ByteBuffer bits = ByteBuffer.wrap(f16.readBytes(ref.name())).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < exact.length; i++) {
          float x = exact[i];
          double err = Math.abs((double) rounded[i] - x);
          if (Math.abs(x) >= 0x1p-14f) {
            assertTrue(err <= Math.abs(x) * 0x1p-11, ref.name() + "[" + i + "]: " + x + " vs " + rounded[i]);
          } else {
            assertTrue(err <= 0x1p-25, ref.name() + "[" + i + "] subnormal: " + x + " vs " + rounded[i]);
          }
          assertEquals(bits.getShort(2 * i), HalfFloats.floatToHalf(x), ref.name() + "[" + i + "]");
        }
      }
    }
  }

  @Test
  void readsF64AsNearestFloatAndRefusesIntegersAsFloat() throws IOException {
    ByteBuffer data = ByteBuffer.allocate(24 + 16).order(ByteOrder.LITTLE_ENDIAN);
    data.putDouble(0.1).putDouble(-1e300).putDouble(1.5);
    data.putLong(7).putLong(-1);
    String header = "{\"d\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[0,24]},"
        + "\"i\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[24,40]}}";
    Path file = write(dir, "mixed.safetensors", rawFile(header, data.array()));
    try (SafeTensorsFile f = SafeTensorsFile.open(file)) {
      assertArrayEquals(new float[] {0.1f, Float.NEGATIVE_INFINITY, 1.5f}, f.readFloat32("d"));
      assertFails(() -> f.readFloat32("i"), file.toString(), "'i'", "I64", "cannot be read as float32");
      ByteBuffer ints = ByteBuffer.wrap(f.readBytes("i")).order(ByteOrder.LITTLE_ENDIAN);
      assertEquals(7, ints.getLong());
      assertEquals(-1, ints.getLong());
    }
  }

  @Test
  void missingTensorAndSmallTargetNameFileAndTensor() {
    Path path = sharedFile(STORIES);
    try (SafeTensorsFile f = SafeTensorsFile.open(path)) {
      assertFails(() -> f.info("lm_head.weight"), path.toString(), "'lm_head.weight'");
      assertFails(() -> f.readFloat32("nope"), path.toString(), "'nope'");
      assertFails(() -> f.readFloat32Into("model.norm.weight", FloatBuffer.allocate(63)),
          path.toString(), "'model.norm.weight'", "64 elements", "room for 63");
    }
  }

  @Test
  void readsAfterCloseFailWithAMessage() {
    Path path = sharedFile(STORIES);
    SafeTensorsFile f = SafeTensorsFile.open(path);
    f.close();
    assertFails(() -> f.readFloat32(EMBED), path.toString(), EMBED, "closed");
  }

  /** Positional reads on one shared channel: concurrent readers see consistent data. */
  @Test
  void concurrentReadsAgree() throws Exception {
    try (SafeTensorsFile f = SafeTensorsFile.open(sharedFile(STORIES))) {
      List<String> names = new ArrayList<>(f.names());
      List<float[]> expected = new ArrayList<>();
      for (String n : names) {
        expected.add(f.readFloat32(n));
      }
      ExecutorService pool = Executors.newFixedThreadPool(4);
      try {
        List<Future<?>> futures = new ArrayList<>();
        for (int t = 0; t < 4; t++) {
          int offset = t;
          futures.add(pool.submit(() -> {
            for (int round = 0; round < 5; round++) {
              for (int i = 0; i < names.size(); i++) {
                int k = (i + offset * 11) % names.size();
                assertArrayEquals(expected.get(k), f.readFloat32(names.get(k)), names.get(k));
              }
            }
          }));
        }
        for (Future<?> fut : futures) {
          fut.get();
        }
      } finally {
        pool.shutdownNow();
      }
    }
  }
}
