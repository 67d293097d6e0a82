package org.loratransplant.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.safetensors.Checkpoint;
import org.loratransplant.safetensors.SafeTensorsWriter;
import org.loratransplant.safetensors.TensorData;
import org.loratransplant.testing.SharedData;

/**
 * CPU models map float32 checkpoints copy-on-write instead of reading them: the same weights and
 * outputs as a model read into fresh memory, writes into a mapped weight never reach the file,
 * and tensors that are not back to back in stacking order are read as before.
 */
class MappedLoadTest {
  @TempDir Path tmp;

  /** A writable copy of stories260K (module order: q, k, v and gate, up are adjacent). */
  private Path copyOfStories() throws Exception {
    Path src = SharedData.model("stories260K");
    Path dir = tmp.resolve("stories260K");
    Files.createDirectories(dir);
    try (var files = Files.list(src)) {
      for (Path f : files.toList()) {
        Files.copy(f, dir.resolve(f.getFileName()));
      }
    }
    dir.resolve("model.safetensors").toFile().setWritable(true);
    return dir;
  }

  private static LlamaModel load(Path dir, boolean map) {
    System.setProperty("lt.load.mmap", Boolean.toString(map));
    try {
      return LlamaModel.load(dir, Device.cpu());
    } finally {
      System.clearProperty("lt.load.mmap");
    }
  }

  private static float[] logits(LlamaModel model) {
    try (NDManager m = model.manager().newSubManager()) {
      long[] ids = {1, 403, 407, 261, 429, 300, 21, 9};
      long[] pos = {0, 1, 2, 3, 4, 5, 6, 7};
      float[] mask = new float[64];
      for (int i = 0; i < 8; i++) {
        for (int j = i + 1; j < 8; j++) {
          mask[i * 8 + j] = -1e9f;
        }
      }
      NDArray h = model.hidden(LlamaModel.int64(m, ids, 1, 8), LlamaModel.int64(m, pos, 1, 8),
          m.create(mask, new ai.djl.ndarray.types.Shape(1, 1, 1, 8, 8)), null, false);
      return model.logits(h).toFloatArray();
    }
  }

  private static void assertSameWeights(LlamaModel a, LlamaModel b) {
    assertArrayEquals(b.embeddingTable().toFloatArray(), a.embeddingTable().toFloatArray());
    for (int i = 0; i < a.config().numLayers(); i++) {
      LlamaModel.Layer x = a.layer(i);
      LlamaModel.Layer y = b.layer(i);
      assertArrayEquals(y.qkv().toFloatArray(), x.qkv().toFloatArray(), "qkv " + i);
      assertArrayEquals(y.gateUp().toFloatArray(), x.gateUp().toFloatArray(), "gate|up " + i);
      assertArrayEquals(y.o().toFloatArray(), x.o().toFloatArray(), "o " + i);
      assertArrayEquals(y.down().toFloatArray(), x.down().toFloatArray(), "down " + i);
      assertArrayEquals(y.inputNorm().toFloatArray(), x.inputNorm().toFloatArray());
    }
  }

  private static String sha256(Path f) throws Exception {
    return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256")
        .digest(Files.readAllBytes(f)));
  }

  @Test
  void mappedModelEqualsAReadOne() throws Exception {
    Path dir = copyOfStories();
    try (LlamaModel mapped = load(dir, true); LlamaModel read = load(dir, false)) {
      // embedding, final norm, and per layer 2 norms, qkv, o, gate|up, down
      assertEquals(2 + 6 * mapped.config().numLayers(), mapped.mappedTensors());
      assertEquals(0, read.mappedTensors());
      assertSameWeights(mapped, read);
      assertArrayEquals(logits(read), logits(mapped));
    }
  }

  @Test
  void aBadSwitchValueIsRefusedNamingTheProperty() throws Exception {
    Path dir = copyOfStories();
    System.setProperty("lt.load.mmap", "flase");
    try {
      IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(
          IllegalArgumentException.class, () -> LlamaModel.load(dir, Device.cpu()).close());
      assertTrue(e.getMessage().contains("lt.load.mmap") && e.getMessage().contains("flase"),
          e.getMessage());
    } finally {
      System.clearProperty("lt.load.mmap");
    }
  }

  @Test
  void writesIntoAMappedWeightStayInThisProcess() throws Exception {
    Path dir = copyOfStories();
    Path file = dir.resolve("model.safetensors");
    String before = sha256(file);
    try (LlamaModel model = load(dir, true)) {
      NDArray q = model.linear(0, Projection.Q_PROJ).weight();
      float first = q.toFloatArray()[0];
      q.addi(1f); // as a LoRA merge writes into the frozen weight
      model.weightsChanged();
      assertEquals(first + 1f, q.toFloatArray()[0], 1e-6f);
      try (LlamaModel again = load(dir, true)) {
        assertEquals(first, again.linear(0, Projection.Q_PROJ).weight().toFloatArray()[0]);
      }
    }
    assertEquals(before, sha256(file), "the checkpoint file is unchanged");
  }

  @Test
  void aNanInAMappedWeightIsRefusedByName() throws Exception {
    Path dir = copyOfStories();
    Path file = dir.resolve("model.safetensors");
    String name = "model.layers.1.mlp.up_proj.weight";
    long at;
    try (Checkpoint ckpt = Checkpoint.open(dir)) {
      // data start = 8 + header length; the 10th float of the tensor
      long headerLength;
      try (var ch = java.nio.channels.FileChannel.open(file)) {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(8)
            .order(java.nio.ByteOrder.LITTLE_ENDIAN);
        ch.read(b, 0);
        headerLength = b.getLong(0);
      }
      at = 8 + headerLength + ckpt.info(name).begin() + 10 * Float.BYTES;
    }
    try (var ch = java.nio.channels.FileChannel.open(file,
        java.nio.file.StandardOpenOption.WRITE)) {
      ch.write(java.nio.ByteBuffer.allocate(4).order(java.nio.ByteOrder.LITTLE_ENDIAN)
          .putFloat(0, Float.NaN), at);
    }
    ModelConfigException e = org.junit.jupiter.api.Assertions.assertThrows(
        ModelConfigException.class, () -> load(dir, true).close());
    assertTrue(e.getMessage().contains(name), e.getMessage());
  }

  @Test
  void tensorsOutOfStackingOrderAreRead() throws Exception {
    // Our writer sorts tensors by name: k_proj, o_proj, q_proj, v_proj, so q, k and v are not
    // back to back in the stacking order (gate_proj, up_proj still are).
    Path src = SharedData.model("stories260K");
    Path dir = tmp.resolve("sorted");
    Files.createDirectories(dir);
    Map<String, TensorData> tensors = new LinkedHashMap<>();
    try (Checkpoint ckpt = Checkpoint.open(src)) {
      for (String name : ckpt.names()) {
        tensors.put(name, TensorData.ofFloat32(ckpt.info(name).dims(), ckpt.readFloat32(name)));
      }
    }
    SafeTensorsWriter.write(dir.resolve("model.safetensors"), tensors, Map.of("format", "pt"));
    for (String f : new String[] {"config.json", "tokenizer.json"}) {
      if (Files.exists(src.resolve(f))) {
        Files.copy(src.resolve(f), dir.resolve(f));
      }
    }
    try (LlamaModel sorted = load(dir, true); LlamaModel read = load(copyOfStories(), false)) {
      int layers = sorted.config().numLayers();
      assertEquals(2 + 5 * layers, sorted.mappedTensors(), "every tensor but q|k|v mapped");
      assertSameWeights(sorted, read);
      assertArrayEquals(logits(read), logits(sorted));
    }
  }

  @Test
  void inPlaceChangesOfAMappedModelMatchTheReadModel() throws Exception {
    Path dir = copyOfStories();
    try (LlamaModel mapped = load(dir, true); LlamaModel read = load(dir, false)) {
      for (LlamaModel m : new LlamaModel[] {mapped, read}) {
        NDArray w = m.linear(1, Projection.DOWN_PROJ).weight();
        w.muli(0.5f);
        m.weightsChanged();
      }
      float[] a = logits(mapped);
      assertArrayEquals(logits(read), a);
      try (LlamaModel fresh = load(dir, true)) {
        assertNotEquals(logits(fresh)[0], a[0], "the change is the process's, not the file's");
        assertTrue(fresh.mappedTensors() > 0);
      }
    }
  }
}
