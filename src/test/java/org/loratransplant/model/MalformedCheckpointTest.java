package org.loratransplant.model;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.safetensors.SafeTensorsWriter;
import org.loratransplant.safetensors.TensorData;

/**
 * Broken model directories, each made here from a tiny random Llama: every failure is a clear
 * error naming the file and, where there is one, the tensor.
 */
class MalformedCheckpointTest {
  @TempDir Path tmp;

  static final String CONFIG = """
      {"model_type": "llama", "hidden_size": 8, "intermediate_size": 16,
       "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
       "vocab_size": 10, "max_position_embeddings": 16, "rms_norm_eps": 1e-5,
       "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2}
      """;

  /** A valid tiny model: 8 hidden, 2 heads of 4, 1 kv head, vocab 10. */
  Path tinyModel(String name) throws IOException {
    Path dir = tmp.resolve(name);
    Files.createDirectories(dir);
    Files.writeString(dir.resolve("config.json"), CONFIG);
    SafeTensorsWriter.write(dir.resolve("model.safetensors"), tensors(), Map.of("format", "pt"));
    return dir;
  }

  static Map<String, TensorData> tensors() {
    Map<String, TensorData> t = new LinkedHashMap<>();
    t.put("model.embed_tokens.weight", f(10, 8));
    t.put("model.norm.weight", f(8));
    t.put("model.layers.0.input_layernorm.weight", f(8));
    t.put("model.layers.0.post_attention_layernorm.weight", f(8));
    t.put("model.layers.0.self_attn.q_proj.weight", f(8, 8));
    t.put("model.layers.0.self_attn.k_proj.weight", f(4, 8));
    t.put("model.layers.0.self_attn.v_proj.weight", f(4, 8));
    t.put("model.layers.0.self_attn.o_proj.weight", f(8, 8));
    t.put("model.layers.0.mlp.gate_proj.weight", f(16, 8));
    t.put("model.layers.0.mlp.up_proj.weight", f(16, 8));
    t.put("model.layers.0.mlp.down_proj.weight", f(8, 16));
    return t;
  }

  static TensorData f(long... shape) {
    long n = 1;
    for (long d : shape) {
      n *= d;
    }
    return TensorData.ofFloat32(shape, floats((int) n));
  }

  static float[] floats(int n) {
    float[] v = new float[n];
    for (int i = 0; i < v.length; i++) {
      v[i] = (float) Math.sin(i * 0.37) * 0.5f;
    }
    return v;
  }

  private RuntimeException fails(Path dir) {
    return assertThrows(RuntimeException.class, () -> LanguageModel.load(dir, Device.cpu()));
  }

  private static void names(RuntimeException e, String... parts) {
    for (String p : parts) {
      assertTrue(e.getMessage().contains(p), "'" + e.getMessage() + "' should name " + p);
    }
  }

  @Test
  void theTinyModelItselfLoadsAndRuns() throws IOException {
    try (LanguageModel lm = LanguageModel.load(tinyModel("ok"), Device.cpu())) {
      float[] lp = lm.logprobs(java.util.List.of(new int[] {1}),
          java.util.List.of(new int[] {3, 4}), null, 1).get(0);
      assertTrue(lp[0] < 0 && lp[1] < 0);
    }
  }

  @Test
  void truncatedFile() throws IOException {
    Path dir = tinyModel("trunc");
    Path f = dir.resolve("model.safetensors");
    byte[] b = Files.readAllBytes(f);
    Files.write(f, java.util.Arrays.copyOf(b, b.length - 100));
    names(fails(dir), "model.safetensors", "truncated file");
  }

  @Test
  void hostileHeaderLengthAndShapeFailBeforeAllocating() throws IOException {
    Path dir = tinyModel("hostile");
    Path f = dir.resolve("model.safetensors");
    byte[] b = Files.readAllBytes(f);
    ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 1L << 62);
    Files.write(f, b);
    names(fails(dir), "model.safetensors", "header length");
    writeRaw(f, "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[1099511627776,"
        + "1099511627776],\"data_offsets\":[0,32]}}", 32);
    names(fails(dir), "model.norm.weight", "too large");
  }

  @Test
  void badHeaderUnknownDtypeAndOverlap() throws IOException {
    Path dir = tinyModel("bad");
    Path f = dir.resolve("model.safetensors");
    writeRaw(f, "{not json", 8);
    names(fails(dir), "model.safetensors", "JSON");
    writeRaw(f, "{\"model.norm.weight\":{\"dtype\":\"F8_E4M3X\",\"shape\":[8],"
        + "\"data_offsets\":[0,8]}}", 8);
    names(fails(dir), "model.norm.weight", "unsupported dtype");
    writeRaw(f, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12);
    names(fails(dir), "'b'", "overlaps");
    writeRaw(f, "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8);
    names(fails(dir), "'a'", "needs 12");
  }

  @Test
  void wrongShapeAndMissingTensor() throws IOException {
    Path dir = tmp.resolve("shape");
    Files.createDirectories(dir);
    Files.writeString(dir.resolve("config.json"), CONFIG);
    Map<String, TensorData> t = tensors();
    t.put("model.layers.0.self_attn.k_proj.weight", f(8, 8));
    SafeTensorsWriter.write(dir.resolve("model.safetensors"), t, Map.of());
    names(fails(dir), "model.layers.0.self_attn.k_proj.weight", "[8, 8]", "[4, 8]");
    t = tensors();
    t.remove("model.layers.0.mlp.up_proj.weight");
    SafeTensorsWriter.write(dir.resolve("model.safetensors"), t, Map.of());
    names(fails(dir), "model.layers.0.mlp.up_proj.weight", "missing");
  }

  @Test
  void unsupportedModelTypeAndPickle() throws IOException {
    Path dir = tinyModel("type");
    Files.writeString(dir.resolve("config.json"), CONFIG.replace("\"llama\"", "\"gpt2\""));
    names(fails(dir), "config.json", "gpt2");
    Path pickle = tmp.resolve("pickle");
    Files.createDirectories(pickle);
    Files.writeString(pickle.resolve("config.json"), CONFIG);
    Files.write(pickle.resolve("pytorch_model.bin"), new byte[] {(byte) 0x80, 2});
    names(fails(pickle), "pytorch_model.bin", "pickle", "unsafe".substring(0, 0) + "code");
    Path none = tmp.resolve("none");
    Files.createDirectories(none);
    names(fails(none), "config.json");
  }

  @Test
  void aNanOrInfinityInAnyTensorIsRefusedNamingTheTensorAndFile() throws IOException {
    // Unchecked, one NaN made generate print nothing and logprobs all NaN, exit 0.
    for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
      Path dir = tmp.resolve("nonfinite" + Float.hashCode(bad));
      Files.createDirectories(dir);
      Files.writeString(dir.resolve("config.json"), CONFIG);
      Map<String, TensorData> t = tensors();
      float[] v = floats(16 * 8);
      v[37] = bad;
      t.put("model.layers.0.mlp.up_proj.weight", TensorData.ofFloat32(new long[] {16, 8}, v));
      SafeTensorsWriter.write(dir.resolve("model.safetensors"), t, Map.of());
      names(fails(dir), "model.safetensors", "model.layers.0.mlp.up_proj.weight",
          String.valueOf(bad), "index 37");
    }
    // Large but finite values are weights like any other.
    Path dir = tmp.resolve("large");
    Files.createDirectories(dir);
    Files.writeString(dir.resolve("config.json"), CONFIG);
    Map<String, TensorData> t = tensors();
    float[] v = floats(8);
    v[0] = Float.MAX_VALUE;
    t.put("model.norm.weight", TensorData.ofFloat32(new long[] {8}, v));
    SafeTensorsWriter.write(dir.resolve("model.safetensors"), t, Map.of());
    LanguageModel.load(dir, Device.cpu()).close();
  }

  /** Overwrites {@code f} with a header and {@code dataBytes} zero bytes of data. */
  private static void writeRaw(Path f, String header, int dataBytes) throws IOException {
    byte[] h = header.getBytes(StandardCharsets.UTF_8);
    ByteBuffer b = ByteBuffer.allocate(8 + h.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(h.length).put(h);
    Files.write(f, b.array());
  }
}
