package org.loratransplant.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.LoraConfig;
import org.loratransplant.safetensors.Checkpoint;
import org.loratransplant.safetensors.SafeTensorsWriter;
import org.loratransplant.safetensors.TensorData;
import org.loratransplant.testing.SharedData;

/**
 * Models loaded in bf16 ({@link LlamaModel#load(Path, Device, Precision)}): the products'
 * weights are stored in bf16 with no float32 copy, and every output equals what the float32
 * model with bf16 copies of its products computes: exactly where both hold the same bf16
 * values, within bf16's rounding where training runs its products in bf16 too.
 */
class Bf16StorageTest {
  @TempDir Path tmp;

  static final List<int[]> PROMPTS = List.of(new int[] {1}, new int[] {1, 403});
  static final List<int[]> RESPONSES = List.of(
      new int[] {407, 261, 429, 300, 21, 9, 370, 288},
      new int[] {300, 21, 9, 403, 407});

  /**
   * stories260K with every tensor stored as BF16 (rounded) and an untied LM head (the
   * embedding's values), written by our writer: names sorted, so gate|up, o and down are each
   * back to back and q, k, v are not. {@code nanIn} names a tensor whose first value is NaN.
   */
  private Path bf16Stories(String name, String nanIn) throws Exception {
    return bf16Stories(name, nanIn, false);
  }

  /** As above; {@code tied} keeps stories260K's tied LM head (no lm_head tensor). */
  private Path bf16Stories(String name, String nanIn, boolean tied) throws Exception {
    Path src = SharedData.model("stories260K");
    Path dir = tmp.resolve(name);
    Files.createDirectories(dir);
    for (String f : List.of("tokenizer.json", "tokenizer_config.json")) {
      Files.copy(src.resolve(f), dir.resolve(f));
    }
    Files.writeString(dir.resolve("config.json"), Files.readString(src.resolve("config.json"))
        .replace("\"tie_word_embeddings\": true", "\"tie_word_embeddings\": " + tied));
    Map<String, TensorData> tensors = new LinkedHashMap<>();
    try (Checkpoint c = Checkpoint.open(src)) {
      for (String n : c.names()) {
        float[] v = c.readFloat32(n);
        if (n.equals(nanIn)) {
          v[0] = Float.NaN;
        }
        tensors.put(n, TensorData.ofBFloat16(c.info(n).dims(), v));
      }
      if (!tied) {
        tensors.put("lm_head.weight", TensorData.ofBFloat16(c.info("model.embed_tokens.weight")
            .dims(), c.readFloat32("model.embed_tokens.weight")));
      }
    }
    SafeTensorsWriter.write(dir.resolve("model.safetensors"), tensors, null);
    return dir;
  }

  /** A LoRA on every projection with B random, so that the adapter changes the outputs. */
  static LoraAdapter adapter(LanguageModel lm) {
    LoraConfig lc = new LoraConfig(4, 8, 0, EnumSet.allOf(Projection.class), List.of(), false,
        "stories260K");
    LoraAdapter a = LoraAdapter.create(lc, lm.config(), lm.model().manager(), 5);
    SplittableRandom rng = new SplittableRandom(7);
    for (LoraAdapter.Pair p : a.pairs().values()) {
      float[] b = new float[(int) p.bT().size()];
      for (int i = 0; i < b.length; i++) {
        b[i] = (float) (rng.nextGaussian() * 0.05);
      }
      p.bT().set(b);
    }
    a.weightsChanged();
    return a;
  }

  private static List<float[]> logprobs(LanguageModel lm, Adapter adapter) {
    return lm.logprobs(PROMPTS, RESPONSES, adapter, 2);
  }

  private static void assertSame(List<float[]> want, List<float[]> got, String what) {
    for (int k = 0; k < want.size(); k++) {
      assertArrayEquals(want.get(k), got.get(k), what + ", sequence " + k);
    }
  }

  /** Elements of the products' weights (q|k|v, o, gate|up, down; the LM head when untied). */
  static long productValues(LlamaModel m) {
    long n = m.lmHead() == m.embeddingTable() ? 0 : m.lmHead().size();
    for (int i = 0; i < m.config().numLayers(); i++) {
      LlamaModel.Layer l = m.layer(i);
      n += l.qkv().size() + l.o().size() + l.gateUp().size() + l.down().size();
    }
    return n;
  }

  @Test
  void aFloat32CheckpointLoadedInBf16ComputesWhatItsBf16CopiesDidWithHalfTheProductBytes() {
    Path dir = SharedData.model("stories260K");
    try (LanguageModel copies = LanguageModel.load(dir, Device.cpu());
        LanguageModel stored = LanguageModel.load(dir, Device.cpu(), Precision.BF16)) {
      copies.setPrecision(Precision.BF16);
      assertTrue(stored.model().bf16Products());
      assertSame(logprobs(copies, null), logprobs(stored, null), "base");
      long products = productValues(copies.model());
      assertEquals(copies.model().weightBytes() - 2 * products, stored.model().weightBytes());
      // The tied LM head is the float32 embedding: the decoder's one bf16 copy is of it alone
      // (besides both decoders' few scalars and the norm's mean column).
      LanguageModel.DecoderStats c = copies.decoderStats();
      LanguageModel.DecoderStats s = stored.decoderStats();
      long head = copies.model().lmHead().size();
      assertEquals(2 * products, c.baseDecoderBytes() - s.baseDecoderBytes());
      assertTrue(s.baseDecoderBytes() >= 2 * head && s.baseDecoderBytes() < 2 * head + 1024,
          "" + s);
      // The products' float32 values were rounded into new bf16 tensors, not mapped; the
      // embedding and the norms (float32 as stored) are.
      assertEquals(2 * stored.config().numLayers() + 2, stored.model().mappedTensors());
    }
  }

  @Test
  void aBf16CheckpointKeepsItsValuesMappedAndMatchesTheFloat32LoadExactly() throws Exception {
    for (boolean tied : new boolean[] {false, true}) {
      keepsItsValuesMappedAndMatchesTheFloat32LoadExactly(bf16Stories("bf16-" + tied, null,
          tied), tied);
    }
  }

  private static void keepsItsValuesMappedAndMatchesTheFloat32LoadExactly(Path dir,
      boolean tied) {
    try (LanguageModel f32 = LanguageModel.load(dir, Device.cpu());
        LanguageModel bf16 = LanguageModel.load(dir, Device.cpu(), Precision.BF16);
        LoraAdapter a32 = adapter(f32);
        LoraAdapter a16 = adapter(bf16)) {
      f32.setPrecision(Precision.BF16);
      // gate|up, o and down of each layer, the embedding and an untied LM head alias the file;
      // q, k, v are read (not adjacent), the norms converted to float32.
      assertEquals(3 * bf16.config().numLayers() + (tied ? 1 : 2), bf16.model().mappedTensors());
      assertTrue(TrainingOps.isBf16(bf16.model().embeddingTable()));
      for (int i = 0; i < bf16.config().numLayers(); i++) {
        LlamaModel.Layer x = f32.model().layer(i);
        LlamaModel.Layer y = bf16.model().layer(i);
        assertArrayEquals(x.qkv().toFloatArray(), y.qkv().toType(DataType.FLOAT32, false)
            .toFloatArray(), "qkv " + i);
        assertArrayEquals(x.gateUp().toFloatArray(), y.gateUp().toType(DataType.FLOAT32, false)
            .toFloatArray(), "gate|up " + i);
      }
      assertSame(logprobs(f32, null), logprobs(bf16, null), "base, tied " + tied);
      assertSame(logprobs(f32, a32), logprobs(bf16, a16), "LoRA, tied " + tied);
      // Generation (its KV cache and embedding rows float32), static and continuous batching.
      for (LanguageModel.Batching batching : LanguageModel.Batching.values()) {
        int[] want = f32.generate(List.of(new int[] {1}), new long[] {0}, new int[] {60},
            GenerationParams.greedy(60, new int[0]), a32, 2, batching, null).get(0).tokens();
        int[] got = bf16.generate(List.of(new int[] {1}), new long[] {0}, new int[] {60},
            GenerationParams.greedy(60, new int[0]), a16, 2, batching, null).get(0).tokens();
        assertArrayEquals(want, got, batching + ", tied " + tied);
      }
      assertTrue(bf16.decoderStats().adapterFolded());
      assertTrue(bf16.decoderStats().baseDecoderBytes() < 1024, "no bf16 copy of anything, "
          + "tied " + tied + ": " + bf16.decoderStats());
      assertThrows(IllegalStateException.class, () -> bf16.setPrecision(Precision.FP32));
    }
  }

  @Test
  void aNanInABf16TensorIsRefusedByNameMappedOrRead() throws Exception {
    for (String tensor : List.of("model.layers.2.mlp.down_proj.weight",
        "model.layers.3.self_attn.q_proj.weight")) {
      Path dir = bf16Stories("nan-" + tensor.hashCode(), tensor);
      ModelConfigException e = assertThrows(ModelConfigException.class,
          () -> LlamaModel.load(dir, Device.cpu(), Precision.BF16).close());
      assertTrue(e.getMessage().contains(tensor) && e.getMessage().contains("model.safetensors"),
          e.getMessage());
    }
  }

  /** Mean cross-entropy of RESPONSES[0] through the differentiable forward; grads on A, B. */
  static float lossAndGradients(LlamaModel model, LoraAdapter a, List<float[]> grads) {
    int[] r = RESPONSES.get(0);
    long[] ids = new long[r.length];
    long[] pos = new long[r.length];
    ids[0] = 1;
    for (int i = 1; i < r.length; i++) {
      ids[i] = r[i - 1];
      pos[i] = i;
    }
    float[] oneHot = new float[r.length * model.config().vocabSize()];
    for (int i = 0; i < r.length; i++) {
      oneHot[i * model.config().vocabSize() + r[i]] = 1f / r.length;
    }
    float[] mask = new float[r.length * r.length];
    for (int i = 0; i < r.length; i++) {
      for (int j = i + 1; j < r.length; j++) {
        mask[i * r.length + j] = -1e9f;
      }
    }
    List<NDArray> params = a.parameters();
    params.forEach(p -> p.setRequiresGradient(true));
    try (NDManager s = model.manager().newSubManager();
        GradientCollector gc = Engine.getInstance().newGradientCollector()) {
      NDArray h = model.hidden(LlamaModel.int64(s, ids, 1, r.length),
          LlamaModel.int64(s, pos, 1, r.length),
          s.create(mask, new Shape(1, 1, 1, r.length, r.length)), a, true);
      NDArray loss = model.logits(h).logSoftmax(-1)
          .mul(s.create(oneHot, new Shape(1, r.length, model.config().vocabSize()))).sum().neg();
      gc.backward(loss);
      for (NDArray p : params) {
        grads.add(p.getGradient().toFloatArray());
      }
      return loss.getFloat();
    }
  }

  static double cosine(List<float[]> x, List<float[]> y) {
    double xy = 0;
    double xx = 0;
    double yy = 0;
    for (int k = 0; k < x.size(); k++) {
      for (int i = 0; i < x.get(k).length; i++) {
        xy += (double) x.get(k)[i] * y.get(k)[i];
        xx += (double) x.get(k)[i] * x.get(k)[i];
        yy += (double) y.get(k)[i] * y.get(k)[i];
      }
    }
    return xy / Math.sqrt(xx * yy);
  }

  @Test
  void trainingThroughBf16ProductsFollowsTheFloat32LossAndGradients() throws Exception {
    Path dir = bf16Stories("train", null);
    try (LanguageModel f32 = LanguageModel.load(dir, Device.cpu());
        LanguageModel bf16 = LanguageModel.load(dir, Device.cpu(), Precision.BF16);
        LoraAdapter a32 = adapter(f32);
        LoraAdapter a16 = adapter(bf16)) {
      List<float[]> g32 = new ArrayList<>();
      List<float[]> g16 = new ArrayList<>();
      float l32 = lossAndGradients(f32.model(), a32, g32);
      float l16 = lossAndGradients(bf16.model(), a16, g16);
      System.out.printf("bf16 products in training: loss %.5f vs %.5f float32, gradient "
          + "cosine %.6f%n", l16, l32, cosine(g16, g32));
      assertTrue(l16 != l32, "the bf16 products really ran");
      assertEquals(l32, l16, 0.01 * l32);
      assertTrue(cosine(g16, g32) > 0.999, "cosine " + cosine(g16, g32));
      // The differentiable forward and the inference decoder agree on the bf16 model too, up
      // to the rounding of the LoRA folded into the decoder's bf16 weights (training keeps it
      // beside, in float32).
      float[] fused = bf16.logprobs(List.of(PROMPTS.get(0)), List.of(RESPONSES.get(0)), a16, 1)
          .get(0);
      double sum = 0;
      for (float v : fused) {
        sum -= v;
      }
      assertEquals(l16, sum / fused.length, 0.005 * l16);
    }
  }

  @Test
  void aLoraMergedIntoBf16WeightsGivesTheAdaptedOutputsUpToBf16Rounding() throws Exception {
    Path dir = bf16Stories("merge", null);
    try (LanguageModel bf16 = LanguageModel.load(dir, Device.cpu(), Precision.BF16);
        LoraAdapter a = adapter(bf16)) {
      List<float[]> beside = logprobs(bf16, a);
      List<float[]> base = logprobs(bf16, null);
      a.merge(bf16.model());
      List<float[]> merged = logprobs(bf16, null);
      double moved = 0;
      double err = 0;
      for (int k = 0; k < beside.size(); k++) {
        for (int i = 0; i < beside.get(k).length; i++) {
          moved = Math.max(moved, Math.abs(beside.get(k)[i] - base.get(k)[i]));
          err = Math.max(err, Math.abs(beside.get(k)[i] - merged.get(k)[i]));
        }
      }
      System.out.printf("LoRA merged into bf16 weights: max |merged - beside| %.4f nats; the "
          + "adapter moves log-probs by up to %.4f%n", err, moved);
      assertTrue(moved > 0.1, "the adapter matters: " + moved);
      assertTrue(err < 0.1 * moved, "merged " + err + " against a move of " + moved);
    }
  }
}
