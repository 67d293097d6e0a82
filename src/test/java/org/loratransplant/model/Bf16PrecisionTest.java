package org.loratransplant.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.testing.SharedData;

/**
 * bf16 products ({@link Precision#BF16}) against the float32 outputs of real transformers and
 * peft (shared/fixtures/hf-reference): the log-probs move (so bf16 really runs) but stay within
 * what bf16's 8-bit mantissa allows, greedy text keeps its first tokens, and switching back to
 * float32 gives the float32 values again exactly.
 */
class Bf16PrecisionTest {

  /** Mean and max absolute difference of two equally long series. */
  static double[] errors(double[] want, float[] got) {
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

  /**
   * transformers' stories260K sequences: each one's first token as the prompt, the rest as the
   * response, their float32 log-probs, and the greedy text from BOS.
   */
  record StoriesReference(List<int[]> prompts, List<int[]> responses, List<double[]> wants,
      int[] greedy) {
    static StoriesReference load() {
      JsonNode ref = SharedData.json(SharedData.hfReference("stories260K_logprobs.json"));
      List<int[]> prompts = new ArrayList<>();
      List<int[]> responses = new ArrayList<>();
      List<double[]> wants = new ArrayList<>();
      for (JsonNode s : ref.get("sequences")) {
        int[] ids = SharedData.ints(s.get("input_ids"));
        prompts.add(new int[] {ids[0]});
        responses.add(Arrays.copyOfRange(ids, 1, ids.length));
        wants.add(SharedData.doubles(s.get("token_logprobs")));
      }
      return new StoriesReference(prompts, responses, wants,
          SharedData.ints(ref.get("greedy_from_bos_200_new_tokens")));
    }
  }

  @Test
  void stories260kLogprobsStayNearTransformersAndGreedyKeepsItsStart() {
    StoriesReference ref = StoriesReference.load();
    List<int[]> prompts = ref.prompts();
    List<int[]> responses = ref.responses();
    List<double[]> wants = ref.wants();
    try (LanguageModel lm = LanguageModel.load(SharedData.model("stories260K"), Device.cpu())) {
      List<float[]> fp32 = lm.logprobs(prompts, responses, null, 8);
      lm.setPrecision(Precision.BF16);
      List<float[]> bf16 = lm.logprobs(prompts, responses, null, 8);
      double maxMoved = 0;
      for (int k = 0; k < wants.size(); k++) {
        double[] e = errors(wants.get(k), bf16.get(k));
        System.out.printf("stories260K bf16 sequence %d: mean |err| %.4f, max %.4f%n", k, e[0],
            e[1]);
        assertTrue(e[0] < 0.03 && e[1] < 0.25, "sequence " + k + ": mean " + e[0] + " max " + e[1]);
        double[] f = errors(wants.get(k), fp32.get(k));
        maxMoved = Math.max(maxMoved, e[1] - f[1]);
      }
      assertTrue(maxMoved > 1e-4, "bf16 log-probs equal float32's: bf16 did not run");
      int[] want = ref.greedy();
      int[] greedy = lm.generate(List.of(new int[] {1}), new long[] {0},
          GenerationParams.greedy(200, new int[0]), null, 1).get(0).tokens();
      int same = 0;
      while (same < want.length && greedy[same] == want[same]) {
        same++;
      }
      System.out.println("stories260K bf16 greedy: first " + same + " of 200 tokens equal HF's");
      assertTrue(same >= 10, "bf16 greedy left HF's text after " + same + " tokens");
      // Continuous batching runs its own step method through the same bf16 products.
      int[] continuous = lm.generate(List.of(new int[] {1}), new long[] {0}, new int[] {200},
          GenerationParams.greedy(200, new int[0]), null, 4, LanguageModel.Batching.CONTINUOUS,
          null).get(0).tokens();
      int sameContinuous = 0;
      while (sameContinuous < want.length && continuous[sameContinuous] == want[sameContinuous]) {
        sameContinuous++;
      }
      assertTrue(sameContinuous >= 10, "continuous bf16 greedy left HF's text after "
          + sameContinuous + " tokens");
      lm.setPrecision(Precision.FP32);
      List<float[]> back = lm.logprobs(prompts, responses, null, 8);
      for (int k = 0; k < back.size(); k++) {
        assertArrayEquals(fp32.get(k), back.get(k), "float32 again, sequence " + k);
      }
    }
  }

  @Test
  void peftAdapterBesideBf16ProductsStaysNearPeft() {
    Path base = SharedData.hfReference("tiny-llama3");
    Path adapterDir = SharedData.hfReference("peft-tiny-llama3-lora");
    JsonNode active = SharedData.json(adapterDir.resolve("expected.json")).get("active");
    try (LanguageModel lm = LanguageModel.load(base, Device.cpu());
        LoraAdapter adapter = PeftFormat.read(adapterDir, lm.config(), lm.model().manager())) {
      lm.setPrecision(Precision.BF16);
      double worst = 0;
      for (JsonNode c : active) {
        int[] ids = SharedData.ints(c.get("input_ids"));
        float[] lp = lm.logprobs(List.of(new int[] {ids[0]}),
            List.of(Arrays.copyOfRange(ids, 1, ids.length)), adapter, 4).get(0);
        double[] e = errors(SharedData.doubles(c.get("token_logprobs")), lp);
        System.out.printf("tiny-llama3 + PEFT LoRA bf16: mean |err| %.4f, max %.4f%n", e[0], e[1]);
        worst = Math.max(worst, e[1]);
      }
      assertTrue(worst > 1e-4 && worst < 0.25, "max |err| " + worst);
      // The expert's decoder takes the base decoder's bf16 copies of every product it does not
      // fold (o, gate/up, the LM head here): it holds less than a second full copy.
      LanguageModel.DecoderStats bf16 = lm.decoderStats();
      lm.setPrecision(Precision.FP32);
      lm.logprobs(List.of(new int[] {1}), List.of(new int[] {5, 6}), adapter, 4);
      lm.logprobs(List.of(new int[] {1}), List.of(new int[] {5, 6}), null, 4);
      LanguageModel.DecoderStats fp32 = lm.decoderStats();
      assertTrue(bf16.baseDecoderBytes() > 0, "base bf16 copies");
      long extra = bf16.adapterDecoderBytes() - fp32.adapterDecoderBytes();
      assertTrue(extra > 0 && extra < bf16.baseDecoderBytes(), "the expert's decoder made "
          + extra + " bytes of bf16 copies; the base's hold " + bf16.baseDecoderBytes());
    }
  }

  @Test
  void onlyTheFormatsAreAccepted() {
    assertEquals(Precision.BF16, Precision.parse("BF16", "lt.precision"));
    assertEquals(Precision.FP32, Precision.parse("float32", "lt.precision"));
    assertEquals(Precision.F16, Precision.parse("fp16", "lt.precision"));
    assertEquals(Precision.F16, Precision.parse("Float16", "lt.precision"));
    assertEquals(Precision.AUTO, Precision.parse("Auto", "lt.precision"));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> Precision.parse("int8", "lt.precision"));
    assertEquals("lt.precision must be fp32, bf16, f16 or auto, got 'int8'", e.getMessage());
  }
}
