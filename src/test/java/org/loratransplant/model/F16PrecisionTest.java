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
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.lora.LoraAdapter;
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

  private static final List<int[]> PROMPTS = Bf16StorageTest.PROMPTS;
  private static final List<int[]> RESPONSES = Bf16StorageTest.RESPONSES;

  private static double[] errors(double[] want, float[] got) {
    return Bf16PrecisionTest.errors(want, got);
  }

  private static LoraAdapter adapter(LanguageModel lm) {
    return Bf16StorageTest.adapter(lm);
  }

  /** The largest |a - b| over two equally shaped lists of series. */
  private static double maxDiff(List<float[]> a, List<float[]> b) {
    double max = 0;
    for (int k = 0; k < a.size(); k++) {
      for (int i = 0; i < a.get(k).length; i++) {
        max = Math.max(max, Math.abs(a.get(k)[i] - b.get(k)[i]));
      }
    }
    return max;
  }

  @Test
  void stories260kInFloat16StaysCloserToTransformersThanBf16() {
    Bf16PrecisionTest.StoriesReference ref = Bf16PrecisionTest.StoriesReference.load();
    List<int[]> prompts = ref.prompts();
    List<int[]> responses = ref.responses();
    List<double[]> wants = ref.wants();
    try (LanguageModel lm = LanguageModel.load(SharedData.model("stories260K"), Device.cpu())) {
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
      int[] want = ref.greedy();
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
      double diff = maxDiff(adaptedCopies, adaptedStored);
      double moved = maxDiff(adaptedCopies, want);
      System.out.printf("LoRA on float16 products: stored vs copies max |diff| %.4f; the "
          + "adapter moves log-probs by up to %.4f%n", diff, moved);
      assertTrue(diff < 0.05 * moved, "diff " + diff + " against a move of " + moved);
      // The products' float32 values became float16: each product weight takes half the bytes.
      assertEquals(copies.model().weightBytes() - 2 * Bf16StorageTest.productValues(
          copies.model()), stored.model().weightBytes());
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
      double moved = maxDiff(beside, base);
      double err = maxDiff(beside, merged);
      assertTrue(moved > 0.1 && err < 0.02 * moved, "merged " + err + ", moved " + moved);
    }
  }

  /**
   * A copy of stories260K in {@code dir}, every tensor stored by {@code as}, with value 17 of
   * tensor {@code bad} set to {@code value}.
   */
  private static Path storiesCopy(Path dir, java.util.function.BiFunction<long[], float[],
      TensorData> as, String bad, float value) throws Exception {
    Path src = SharedData.model("stories260K");
    Files.createDirectories(dir);
    for (String f : List.of("config.json", "tokenizer.json", "tokenizer_config.json")) {
      Files.copy(src.resolve(f), dir.resolve(f));
    }
    Map<String, TensorData> tensors = new LinkedHashMap<>();
    try (Checkpoint c = Checkpoint.open(src)) {
      for (String n : c.names()) {
        float[] v = c.readFloat32(n);
        if (n.equals(bad)) {
          v[17] = value;
        }
        tensors.put(n, as.apply(c.info(n).dims(), v));
      }
    }
    SafeTensorsWriter.write(dir.resolve("model.safetensors"), tensors, null);
    return dir;
  }

  @Test
  void aWeightBeyondFloat16sRangeIsRefusedNamingTheTensor() throws Exception {
    String bad = "model.layers.3.mlp.down_proj.weight";
    Path dir = storiesCopy(tmp.resolve("wide-range"), TensorData::ofFloat32, bad, -1.0e5f);
    ModelConfigException e = assertThrows(ModelConfigException.class,
        () -> LlamaModel.load(dir, Device.cpu(), Precision.F16).close());
    assertTrue(e.getMessage().contains(bad) && e.getMessage().contains("model.safetensors")
        && e.getMessage().contains("float16's range"), e.getMessage());
    // float32 and bf16 hold it.
    LlamaModel.load(dir, Device.cpu(), Precision.FP32).close();
    LlamaModel.load(dir, Device.cpu(), Precision.BF16).close();
  }

  @Test
  void aNanInAFloat16TensorIsRefusedByNameMappedOrRead() throws Exception {
    // gate|up of a layer lie back to back in the file (mapped); q, k, v do not (read).
    for (String bad : List.of("model.layers.2.mlp.up_proj.weight",
        "model.layers.1.self_attn.k_proj.weight")) {
      Path dir = storiesCopy(tmp.resolve("nan-" + bad.hashCode()), TensorData::ofFloat16, bad,
          Float.NaN);
      ModelConfigException e = assertThrows(ModelConfigException.class,
          () -> LlamaModel.load(dir, Device.cpu(), Precision.F16).close());
      assertTrue(e.getMessage().contains(bad) && e.getMessage().contains("NaN"), e.getMessage());
    }
  }
}
