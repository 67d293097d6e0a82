package org.loratransplant.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.loratransplant.testing.Models;
import org.loratransplant.testing.SharedData;

/**
 * Our forward pass against the real transformers 4.44.2 outputs in shared/fixtures/hf-reference:
 * last-position logits, final hidden state, per-token log-probs, their sum, and 10 greedy tokens,
 * within the tolerances its README suggests for a float32 runtime.
 */
public class HuggingFaceParityTest {

  public static void assertClose(double expected, double actual, double absTol, String what) {
    double tol = absTol + 1e-5 * Math.abs(expected);
    assertTrue(Math.abs(expected - actual) <= tol,
        what + ": expected " + expected + " got " + actual + " (tol " + tol + ")");
  }

  @ParameterizedTest
  @ValueSource(strings = {"tiny-llama3", "tiny-qwen2", "tiny-mistral", "tiny-llama-bf16",
      "tiny-llama-f16"})
  void reproducesTransformers(String name) {
    Path dir = SharedData.hfReference(name);
    JsonNode expected = SharedData.json(dir.resolve("expected.json"));
    LanguageModel lm = Models.shared(dir);
    int caseNo = 0;
    for (JsonNode c : expected.get("cases")) {
      String where = name + " case " + caseNo++;
      int[] ids = SharedData.ints(c.get("input_ids"));
      float[][] lastAndHidden = lastLogitsAndHidden(lm, ids);
      double[] logits = SharedData.doubles(c.get("last_logits"));
      for (int v = 0; v < logits.length; v++) {
        assertClose(logits[v], lastAndHidden[0][v], 1e-4, where + " logit " + v);
      }
      JsonNode hs = c.get("hidden_states_last_position");
      double[] finalHidden = SharedData.doubles(hs.get(hs.size() - 1));
      for (int e = 0; e < finalHidden.length; e++) {
        assertClose(finalHidden[e], lastAndHidden[1][e], 1e-4, where + " final hidden " + e);
      }
      float[] lp = lm.logprobs(List.of(new int[] {ids[0]}),
          List.of(java.util.Arrays.copyOfRange(ids, 1, ids.length)), null, 4).get(0);
      double[] want = SharedData.doubles(c.get("token_logprobs"));
      assertEquals(want.length, lp.length, where);
      double sum = 0;
      for (int i = 0; i < want.length; i++) {
        assertClose(want[i], lp[i], 1e-4, where + " logprob " + i);
        sum += lp[i];
      }
      assertClose(c.get("sum_logprob").asDouble(), sum, 1e-3, where + " sum");
      // HF's generate here does not stop at EOS: no eos ids.
      int[] greedy = lm.generate(List.of(ids), new long[] {0},
          GenerationParams.greedy(10, new int[0]), null, 1).get(0).tokens();
      assertArrayEquals(SharedData.ints(c.get("greedy_new_tokens")), greedy, where + " greedy");
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"tiny-llama3", "tiny-qwen2", "tiny-mistral"})
  void ropeFrequenciesMatch(String name) {
    Path dir = SharedData.hfReference(name);
    double[] want = SharedData.doubles(SharedData.json(dir.resolve("expected.json"))
        .get("rope_inv_freq"));
    ModelConfig cfg = ModelConfig.load(dir);
    float[] got = RopeScaling.inverseFrequencies(cfg.headDim(), cfg.ropeTheta(),
        cfg.ropeScaling());
    assertEquals(want.length, got.length);
    for (int i = 0; i < want.length; i++) {
      assertEquals(want[i], got[i], Math.abs(want[i]) * 1e-6, name + " inv_freq " + i);
    }
  }

  @Test
  void stories260kLogprobsAndGreedy() {
    JsonNode ref = SharedData.json(SharedData.hfReference("stories260K_logprobs.json"));
    LanguageModel lm = Models.shared(SharedData.model("stories260K"));
    List<int[]> prompts = new ArrayList<>();
    List<int[]> responses = new ArrayList<>();
    for (JsonNode s : ref.get("sequences")) {
      int[] ids = SharedData.ints(s.get("input_ids"));
      prompts.add(new int[] {ids[0]});
      responses.add(java.util.Arrays.copyOfRange(ids, 1, ids.length));
    }
    // All three in one right-padded batch: padding must not change any value.
    List<float[]> got = lm.logprobs(prompts, responses, null, 8);
    int k = 0;
    for (JsonNode s : ref.get("sequences")) {
      double[] want = SharedData.doubles(s.get("token_logprobs"));
      double sum = 0;
      for (int i = 0; i < want.length; i++) {
        assertClose(want[i], got.get(k)[i], 1e-4, "sequence " + k + " token " + i);
        sum += got.get(k)[i];
      }
      assertClose(s.get("sum_logprob").asDouble(), sum, 1e-3, "sequence " + k + " sum");
      k++;
    }
    int[] greedy = lm.generate(List.of(new int[] {1}), new long[] {0},
        GenerationParams.greedy(200, new int[0]), null, 1).get(0).tokens();
    assertArrayEquals(SharedData.ints(ref.get("greedy_from_bos_200_new_tokens")), greedy);
  }

  /** Runs the full forward on one sequence; returns the last logits and the final hidden state. */
  public static float[][] lastLogitsAndHidden(LanguageModel lm, int[] ids) {
    return lastLogitsAndHidden(lm, ids, null);
  }

  /** The same with an adapter active. */
  public static float[][] lastLogitsAndHidden(LanguageModel lm, int[] ids, Adapter adapter) {
    LlamaModel m = lm.model();
    int t = ids.length;
    long[] l = new long[t];
    long[] pos = new long[t];
    for (int i = 0; i < t; i++) {
      l[i] = ids[i];
      pos[i] = i;
    }
    try (NDManager scope = m.manager().newSubManager()) {
      NDArray hidden = m.hidden(scope.create(l, new Shape(1, t)), scope.create(pos, new Shape(1, t)),
          scope.create(AttentionMasks.causal(t, 0, 0), new Shape(1, 1, 1, t, t)), adapter, false);
      NDArray last = hidden.get(":, -1, :");
      return new float[][] {m.logits(last).toFloatArray(), last.toFloatArray()};
    }
  }
}
