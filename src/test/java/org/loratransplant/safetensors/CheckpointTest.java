package org.loratransplant.safetensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.loratransplant.safetensors.Fixtures.assertFails;
import static org.loratransplant.safetensors.Fixtures.sharedFile;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/** Model directories: single file, sharded index, and the ways a directory can be wrong. */
class CheckpointTest {
  static final String SHARD1 = "model-00001-of-00002.safetensors";
  static final String SHARD2 = "model-00002-of-00002.safetensors";

  @TempDir Path dir;

  @Test
  void opensSingleFileCheckpoint() {
    Path modelDir = sharedFile("models/stories260K");
    try (Checkpoint c = Checkpoint.open(modelDir);
        SafeTensorsFile f = SafeTensorsFile.open(modelDir.resolve("model.safetensors"))) {
      assertEquals(modelDir, c.dir());
      assertEquals(47, c.names().size());
      assertEquals(List.copyOf(new java.util.TreeSet<>(f.names())), List.copyOf(c.names()));
      assertEquals(List.of(512L, 64L), c.info("model.embed_tokens.weight").shape());
      assertEquals("model.safetensors", c.fileOf("model.norm.weight"));
      assertArrayEquals(f.readFloat32("model.norm.weight"), c.readFloat32("model.norm.weight"));
      assertFalse(c.has("lm_head.weight"));
      assertFails(() -> c.readFloat32("lm_head.weight"), modelDir.toString(), "'lm_head.weight'");
    }
  }

  /**
   * The BF16 shards hold PyTorch's {@code .bfloat16()} of tiny-llama3's F32 weights: values are
   * within half a BF16 ulp (relative 2^-8), and exactly our round-to-nearest-even of the F32.
   */
  @Test
  void opensShardedBf16CheckpointAndDecodesWithinRounding() {
    Path bf16Dir = sharedFile("fixtures/hf-reference/tiny-llama-bf16");
    try (Checkpoint bf16 = Checkpoint.open(bf16Dir);
        Checkpoint f32 = Checkpoint.open(sharedFile("fixtures/hf-reference/tiny-llama3"))) {
      assertEquals(f32.names(), bf16.names());
      assertEquals(21, bf16.names().size());
      assertEquals(SHARD2, bf16.fileOf("lm_head.weight"));
      assertEquals(SHARD1, bf16.fileOf("model.embed_tokens.weight"));
      assertEquals(SHARD1, bf16.fileOf("model.layers.1.self_attn.k_proj.weight"));
      assertEquals(SHARD2, bf16.fileOf("model.layers.1.mlp.up_proj.weight"));
      assertEquals(SHARD2, bf16.fileOf("model.norm.weight"));
      for (String name : f32.names()) {
        assertEquals(DType.BF16, bf16.info(name).dtype());
        assertEquals(f32.info(name).shape(), bf16.info(name).shape());
        float[] exact = f32.readFloat32(name);
        float[] rounded = bf16.readFloat32(name);
        ByteBuffer bits = ByteBuffer.wrap(bf16.readBytes(name)).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < exact.length; i++) {
          double err = Math.abs((double) rounded[i] - exact[i]);
          assertTrue(err <= Math.abs(exact[i]) * 0x1p-8, name + "[" + i + "]: " + exact[i] + " vs " + rounded[i]);
          assertEquals(bits.getShort(2 * i), HalfFloats.floatToBf16(exact[i]), name + "[" + i + "]");
        }
      }
    }
  }

  @Test
  void prefersModelSafetensorsOverIndex() throws IOException {
    writeShard("model.safetensors", "single");
    Files.writeString(dir.resolve(Checkpoint.INDEX_FILE), "not even json");
    try (Checkpoint c = Checkpoint.open(dir)) {
      assertEquals(Set.of("single"), c.names());
    }
  }

  @Test
  void opensValidShardsBuiltHere() throws IOException {
    writeShard(SHARD1, "a", "b");
    writeShard(SHARD2, "c");
    writeIndex(Map.of("a", SHARD1, "b", SHARD1, "c", SHARD2));
    try (Checkpoint c = Checkpoint.open(dir)) {
      assertEquals(List.of("a", "b", "c"), List.copyOf(c.names()));
      assertEquals(SHARD2, c.fileOf("c"));
      assertArrayEquals(new float[] {"c".hashCode()}, c.readFloat32("c"));
    }
  }

  @Test
  void refusesIndexPointingToMissingShard() throws IOException {
    writeShard(SHARD1, "a");
    writeIndex(Map.of("a", SHARD1, "b", SHARD2));
    Path index = dir.resolve(Checkpoint.INDEX_FILE);
    assertFails(() -> Checkpoint.open(dir), index.toString(), SHARD2, "'b'", "does not exist");
  }

  @Test
  void refusesIndexListingTensorTheShardLacks() throws IOException {
    writeShard(SHARD1, "a");
    writeIndex(Map.of("a", SHARD1, "ghost", SHARD1));
    Path index = dir.resolve(Checkpoint.INDEX_FILE);
    assertFails(() -> Checkpoint.open(dir), index.toString(), SHARD1, "'ghost'", "no such tensor");
  }

  @Test
  void refusesShardTensorMissingFromIndex() throws IOException {
    writeShard(SHARD1, "a", "extra");
    writeIndex(Map.of("a", SHARD1));
    Path index = dir.resolve(Checkpoint.INDEX_FILE);
    assertFails(() -> Checkpoint.open(dir), index.toString(), SHARD1, "'extra'", "does not list");
  }

  @Test
  void refusesTensorInAShardTheIndexDoesNotMapItTo() throws IOException {
    writeShard(SHARD1, "a", "b");
    writeShard(SHARD2, "b");
    writeIndex(Map.of("a", SHARD1, "b", SHARD2));
    Path index = dir.resolve(Checkpoint.INDEX_FILE);
    assertFails(() -> Checkpoint.open(dir), index.toString(), SHARD1, "'b'", "maps to shard '" + SHARD2 + "'");
  }

  @ParameterizedTest(name = "{0}")
  @CsvSource(
      delimiter = '|',
      quoteCharacter = '`',
      value = {
        "{\"metadata\":{}}                                         | 'weight_map' is missing",
        "{\"weight_map\":[\"a\"]}                                  | 'weight_map' is missing or not an object",
        "{\"weight_map\":{}}                                       | lists no tensors",
        "{\"weight_map\":{\"a\":3}}                                | not a shard file name",
        "{\"weight_map\":{\"a\":\"../model-00001-of-00002.safetensors\"}} | not a plain file name",
        "{\"weight_map\":{\"a\":\"/etc/passwd\"}}                  | not a plain file name",
        "{\"weight_map\":{\"a\":\"x\",\"a\":\"y\"}}                   | Duplicate field 'a'",
        "[]                                                       | not a JSON object",
        "{\"weight_map\":                                          | cannot read or parse",
      })
  void refusesMalformedIndex(String json, String problem) throws IOException {
    writeShard(SHARD1, "a");
    Path index = Files.writeString(dir.resolve(Checkpoint.INDEX_FILE), json);
    assertFails(() -> Checkpoint.open(dir), index.toString(), problem);
  }

  @Test
  void malformedShardErrorNamesTheShard() throws IOException {
    Path shard = Files.write(dir.resolve(SHARD1), new byte[] {1, 2, 3});
    writeIndex(Map.of("a", SHARD1));
    assertFails(() -> Checkpoint.open(dir), shard.toString(), "shorter than");
  }

  @ParameterizedTest
  @ValueSource(strings = {"pytorch_model.bin", "consolidated.00.pth", "model.pt"})
  void refusesPickleCheckpoints(String pickle) throws IOException {
    Files.write(dir.resolve(pickle), new byte[] {(byte) 0x80, 2});
    Files.writeString(dir.resolve("config.json"), "{}");
    assertFails(() -> Checkpoint.open(dir), dir.toString(), pickle, "unsafe format",
        "may execute code", "not supported", "convert", "safetensors");
  }

  @Test
  void refusesDirectoryWithoutWeights() throws IOException {
    Files.writeString(dir.resolve("config.json"), "{}");
    assertFails(() -> Checkpoint.open(dir), dir.toString(), "no model weights found");
    Path missing = dir.resolve("missing");
    assertFails(() -> Checkpoint.open(missing), missing.toString(), "no such directory");
  }

  /** One F32 scalar-ish tensor per name, holding the name's hash so reads can be checked. */
  private void writeShard(String file, String... names) {
    Map<String, TensorData> tensors = new java.util.HashMap<>();
    for (String n : names) {
      tensors.put(n, TensorData.ofFloat32(new long[] {1}, new float[] {n.hashCode()}));
    }
    SafeTensorsWriter.write(dir.resolve(file), tensors, Map.of("format", "pt"));
  }

  private void writeIndex(Map<String, String> weightMap) throws IOException {
    StringBuilder json = new StringBuilder("{\"metadata\":{\"total_size\":0},\"weight_map\":{");
    String sep = "";
    for (Map.Entry<String, String> e : new java.util.TreeMap<>(weightMap).entrySet()) {
      json.append(sep).append('"').append(e.getKey()).append("\":\"").append(e.getValue()).append('"');
      sep = ",";
    }
    Files.writeString(dir.resolve(Checkpoint.INDEX_FILE), json.append("}}").toString());
  }
}
