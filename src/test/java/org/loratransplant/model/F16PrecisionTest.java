package org.loratransplant.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.ndarray.types.DataType;
import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
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
 * float16 products ({@link Precision#F16}): a float16 checkpoint keeps its exact values (mapped,
 * half float32's bytes) and reproduces transformers' float32 outputs within float16's rounding of
 * the activations; a model loaded in float16 computes exactly what a float32 model with float16
 * copies does; float16 is closer to float32 than bf16 (3 more mantissa bits); values beyond its
 * range are refused at load, naming the tensor.
 */
class F16PrecisionTest {
  @TempDir Path tmp;

  private static final List<int[]> PROMPTS = List.of(new int[] {1}, new int[] {1, 403});
  private static final List<int[]> RESPONSES = List.of(
      new int[] {407, 261, 429, 300, 21, 9, 370, 288},
      new int[] {300, 21, 9, 403, 407});

  /** Mean and max absolute difference. */
  private static double[] errors(double[] want, float[] got) {
    assertEquals(want.length, got.length);
    double sum = 0;
    double max = 0;
    for (int i = 0; i < want.length; i++) {
      double d = Math.abs(want[i] - got[i]);
      sum += d;
      max = Math.max(max, d);
    }
    return new double[] {sum / want.length, max};
  }

  /** A LoRA on every projection with B random, so that the adapter changes the outputs. */
  private static LoraAdapter adapter(LanguageModel lm) {
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

  @Test
  void stories260kInFloat16StaysCloserToTransformersThanBf16() {
    JsonNode ref = SharedData.json(SharedData.hfReference("stories260K_logprobs.json"));
    try (LanguageModel lm = LanguageModel.load(SharedData.model("stories260K"), Device.cpu())) {
      List<int[]> prompts = new ArrayList<>();
      List<int[]> responses = new ArrayList<>();
      List<double[]> wants = new ArrayList<>();
      for (JsonNode s : ref.get("sequences")) {
        int[] ids = SharedData.ints(s.get("input_ids"));
        prompts.add(new int[] {ids[0]});
        responses.add(Arrays.copyOfRange(ids, 1, ids.length));
        wants.add(SharedData.doubles(s.get("token_logprobs")));
      }
      List<float[]> fp32 = lm.logprobs(prompts, responses, null, 8);
      lm.setPrecision(Precision.F16);
      List<float[]> f16 = lm.logprobs(prompts, responses, null, 8);
      lm.setPrecision(Precision.BF16);
      List<float[]> bf16 = lm.logprobs(prompts, responses, null, 8);
      double f16Mean = 0;
      double bf16Mean = 0;
      double f16Max = 0;
      double moved = 0;
      for (int k = 0; k < wants.size(); k++) {
        double[] e16 = errors(wants.get(k), f16.get(k));
        double[] eb = errors(wants.get(k), bf16.get(k));
        f16Mean += e16[0] / wants.size();
        bf16Mean += eb[0] / wants.size();
        f16Max = Math.max(f16Max, e16[1]);
        moved = Math.max(moved, e16[1] - errors(wants.get(k), fp32.get(k))[1]);
      }
      System.out.printf("stories260K against transformers: float16 mean |err| %.5f (max %.4f), "
          + "bf16 %.5f%n", f16Mean, f16Max, bf16Mean);
      assertTrue(moved > 1e-5, "float16 log-probs equal float32's: float16 did not run");
      assertTrue(f16Max < 0.05, "float16 max |err| " + f16Max);
      assertTrue(f16Mean < bf16Mean / 2, "float16 " + f16Mean + " vs bf16 " + bf16Mean);
      int[] want = SharedData.ints(ref.get("greedy_from_bos_200_new_tokens"));
      lm.setPrecision(Precision.F16);
      for (LanguageModel.Batching batching : LanguageModel.Batching.values()) {
        int[] greedy = lm.generate(List.of(new int[] {1}), new long[] {0}, new int[] {200},
            GenerationParams.greedy(200, new int[0]), null, 4, batching, null).get(0).tokens();
        int same = 0;
        while (same < want.length && greedy[same] == want[same]) {
          same++;
        }
        System.out.println("stories260K float16 greedy (" + batching + "): first " + same
            + " of 200 tokens equal HF's");
        assertTrue(same >= 30, batching + ": float16 greedy left HF's text after " + same);
      }
      lm.setPrecision(Precision.FP32);
      List<float[]> back = lm.logprobs(prompts, responses, null, 8);
      for (int k = 0; k < back.size(); k++) {
        assertArrayEquals(fp32.get(k), back.get(k), "float32 again, sequence " + k);
      }
    }
  }

  @Test
  void aFloat16CheckpointKeepsItsValuesMappedAndStaysNearTransformers() {
    Path dir = SharedData.hfReference("tiny-llama-f16");
    JsonNode expected = SharedData.json(dir.resolve("expected.json"));
    try (LanguageModel f32 = LanguageModel.load(dir, Device.cpu());
        LanguageModel f16 = LanguageModel.load(dir, Device.cpu(), Precision.F16)) {
      assertEquals(Precision.F16, f16.model().productPrecision());
      assertEquals(Precision.F16, f16.precision());
      for (int i = 0; i < f16.config().numLayers(); i++) {
        LlamaModel.Layer x = f32.model().layer(i);
        LlamaModel.Layer y = f16.model().layer(i);
        assertEquals(DataType.FLOAT16, y.gateUp().getDataType());
        assertArrayEquals(x.qkv().toFloatArray(), y.qkv().toType(DataType.FLOAT32, false)
            .toFloatArray(), "qkv " + i + ": the file's values exactly");
        assertArrayEquals(x.down().toFloatArray(), y.down().toType(DataType.FLOAT32, false)
            .toFloatArray(), "down " + i);
      }
      assertTrue(f16.model().mappedTensors() > 0, "F16 tensors are mapped, not read");
      assertTrue(f16.model().weightBytes() < 0.6 * f32.model().weightBytes(),
          f16.model().weightBytes() + " of " + f32.model().weightBytes());
      assertTrue(f16.decoderStats().baseDecoderBytes() < 1024,
          "no float16 copy of anything: " + f16.decoderStats());
      // Against transformers' float32 outputs of the same float16 weights, beside the error of
      // bf16 products on them (random weights: wider activations than a trained model's).
      f32.setPrecision(Precision.BF16);
      double worst = 0;
      double worstBf16 = 0;
      for (JsonNode c : expected.get("cases")) {
        int[] ids = SharedData.ints(c.get("input_ids"));
        List<int[]> prompt = List.of(new int[] {ids[0]});
        List<int[]> response = List.of(Arrays.copyOfRange(ids, 1, ids.length));
        double[] want = SharedData.doubles(c.get("token_logprobs"));
        worst = Math.max(worst, errors(want, f16.logprobs(prompt, response, null, 4).get(0))[1]);
        worstBf16 = Math.max(worstBf16, errors(want, f32.logprobs(prompt, response, null, 4)
            .get(0))[1]);
      }
      System.out.printf("tiny-llama-f16 against transformers: max |logprob err| float16 %.2e, "
          + "bf16 %.2e%n", worst, worstBf16);
      assertTrue(worst > 1e-6 && worst < 0.05 && worst < worstBf16 / 2,
          "max |err| " + worst + ", bf16 " + worstBf16);
      IllegalStateException e = assertThrows(IllegalStateException.class,
          () -> f16.setPrecision(Precision.FP32));
      assertTrue(e.getMessage().contains("in f16"), e.getMessage());
      f16.setPrecision(Precision.AUTO);
      assertEquals(Precision.F16, f16.precision(), "auto keeps a float16 model so");
    }
  }

  @Test
  void aFloat32CheckpointLoadedInFloat16ComputesWhatItsFloat16CopiesDid() {
    Path dir = SharedData.model("stories260K");
    try (LanguageModel copies = LanguageModel.load(dir, Device.cpu());
        LanguageModel stored = LanguageModel.load(dir, Device.cpu(), Precision.F16);
        LoraAdapter ac = adapter(copies);
        LoraAdapter as = adapter(stored)) {
      copies.setPrecision(Precision.F16);
      List<float[]> want = copies.logprobs(PROMPTS, RESPONSES, null, 2);
      List<float[]> got = stored.logprobs(PROMPTS, RESPONSES, null, 2);
      for (int k = 0; k < want.size(); k++) {
        assertArrayEquals(want.get(k), got.get(k), "sequence " + k);
      }
      for (LanguageModel.Batching batching : LanguageModel.Batching.values()) {
        int[] w = copies.generate(List.of(new int[] {1}), new long[] {0}, new int[] {60},
            GenerationParams.greedy(60, new int[0]), null, 2, batching, null).get(0).tokens();
        int[] g = stored.generate(List.of(new int[] {1}), new long[] {0}, new int[] {60},
            GenerationParams.greedy(60, new int[0]), null, 2, batching, null).get(0).tokens();
        assertArrayEquals(w, g, "greedy, " + batching);
      }
      // With an adapter folded in, the copies round W + BA once and the stored model rounds W,
      // then W16 + BA: equal up to that second rounding, far below what the adapter moves.
      List<float[]> adaptedCopies = copies.logprobs(PROMPTS, RESPONSES, ac, 2);
      List<float[]> adaptedStored = stored.logprobs(PROMPTS, RESPONSES, as, 2);
      double diff = 0;
      double moved = 0;
      for (int k = 0; k < want.size(); k++) {
        for (int i = 0; i < want.get(k).length; i++) {
          diff = Math.max(diff, Math.abs(adaptedCopies.get(k)[i] - adaptedStored.get(k)[i]));
          moved = Math.max(moved, Math.abs(adaptedCopies.get(k)[i] - want.get(k)[i]));
        }
      }
      System.out.printf("LoRA on float16 products: stored vs copies max |diff| %.4f; the "
          + "adapter moves log-probs by up to %.4f%n", diff, moved);
      assertTrue(diff < 0.05 * moved, "diff " + diff + " against a move of " + moved);
      // The products' float32 values became float16: each product weight takes half the bytes.
      LlamaModel m = copies.model();
      long products = 0;
      for (int i = 0; i < m.config().numLayers(); i++) {
        LlamaModel.Layer l = m.layer(i);
        products += l.qkv().size() + l.o().size() + l.gateUp().size() + l.down().size();
      }
      assertEquals(m.weightBytes() - 2 * products, stored.model().weightBytes());
    }
  }

  @Test
  void trainingAndMergingThroughFloat16ProductsFollowFloat32() {
    Path dir = SharedData.model("stories260K");
    try (LanguageModel f32 = LanguageModel.load(dir, Device.cpu());
        LanguageModel f16 = LanguageModel.load(dir, Device.cpu(), Precision.F16);
        LoraAdapter a32 = adapter(f32);
        LoraAdapter a16 = adapter(f16)) {
      List<float[]> g32 = new ArrayList<>();
      List<float[]> g16 = new ArrayList<>();
      float l32 = Bf16StorageTest.lossAndGradients(f32.model(), a32, g32);
      float l16 = Bf16StorageTest.lossAndGradients(f16.model(), a16, g16);
      double cos = Bf16StorageTest.cosine(g16, g32);
      System.out.printf("float16 products in training: loss %.5f vs %.5f float32, gradient "
          + "cosine %.7f%n", l16, l32, cos);
      assertTrue(l16 != l32, "the float16 products really ran");
      assertEquals(l32, l16, 0.002 * l32);
      assertTrue(cos > 0.9999, "cosine " + cos);
      // Merged into the float16 weights, the adapter gives its outputs up to that rounding.
      List<float[]> beside = f16.logprobs(PROMPTS, RESPONSES, a16, 2);
      List<float[]> base = f16.logprobs(PROMPTS, RESPONSES, null, 2);
      a16.merge(f16.model());
      List<float[]> merged = f16.logprobs(PROMPTS, RESPONSES, null, 2);
      double moved = 0;
      double err = 0;
      for (int k = 0; k < beside.size(); k++) {
        for (int i = 0; i < beside.get(k).length; i++) {
          moved = Math.max(moved, Math.abs(beside.get(k)[i] - base.get(k)[i]));
          err = Math.max(err, Math.abs(beside.get(k)[i] - merged.get(k)[i]));
        }
      }
      assertTrue(moved > 0.1 && err < 0.02 * moved, "merged " + err + ", moved " + moved);
    }
  }

  @Test
  void aWeightBeyondFloat16sRangeIsRefusedNamingTheTensor() throws Exception {
    Path src = SharedData.model("stories260K");
    Path dir = tmp.resolve("wide-range");
    Files.createDirectories(dir);
    for (String f : List.of("config.json", "tokenizer.json", "tokenizer_config.json")) {
      Files.copy(src.resolve(f), dir.resolve(f));
    }
    String bad = "model.layers.3.mlp.down_proj.weight";
    Map<String, TensorData> tensors = new LinkedHashMap<>();
    try (Checkpoint c = Checkpoint.open(src)) {
      for (String n : c.names()) {
        float[] v = c.readFloat32(n);
        if (n.equals(bad)) {
          v[17] = -1.0e5f;
        }
        tensors.put(n, TensorData.ofFloat32(c.info(n).dims(), v));
      }
    }
    SafeTensorsWriter.write(dir.resolve("model.safetensors"), tensors, null);
    ModelConfigException e = assertThrows(ModelConfigException.class,
        () -> LlamaModel.load(dir, Device.cpu(), Precision.F16).close());
    assertTrue(e.getMessage().contains(bad) && e.getMessage().contains("model.safetensors")
        && e.getMessage().contains("float16's range"), e.getMessage());
    // float32 and bf16 hold it.
    LlamaModel.load(dir, Device.cpu(), Precision.FP32).close();
    LlamaModel.load(dir, Device.cpu(), Precision.BF16).close();
  }
}
