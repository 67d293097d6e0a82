package org.loratransplant.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.loratransplant.testing.Models;
import org.loratransplant.testing.SharedData;

/**
 * Properties of the runtime that no fixture covers directly: incremental (KV-cache) decoding
 * agrees with the full teacher-forced forward, batching with right padding (scoring) and left
 * padding (generation) leaves every request's result unchanged, and a sampled request depends on
 * its own seed only.
 */
class BatchingConsistencyTest {
  private static final double TOL = 2e-4;

  private static LanguageModel stories() {
    return Models.shared(SharedData.model("stories260K"));
  }

  @Test
  void kvCacheDecodingMatchesTeacherForcing() {
    LanguageModel lm = stories();
    LlamaModel m = lm.model();
    int[] ids = lm.tokenizer().encode("Once upon a time, there was a dog named Max.", true);
    int t = ids.length;
    float[] full = lm.logprobs(List.of(new int[] {ids[0]}),
        List.of(Arrays.copyOfRange(ids, 1, t)), null, 1).get(0);
    float[] incremental = new float[t - 1];
    try (NDManager scope = m.manager().newSubManager();
        KvCache cache = new KvCache(scope, m.config().numLayers())) {
      for (int i = 0; i + 1 < t; i++) {
        NDArray id = scope.create(new long[] {ids[i]}, new Shape(1, 1));
        NDArray pos = scope.create(new long[] {i}, new Shape(1, 1));
        NDArray mask = scope.create(AttentionMasks.causal(1, i, 0), new Shape(1, 1, 1, 1, i + 1));
        NDArray logp = m.logits(m.hidden(id, pos, mask, cache, null, false)).logSoftmax(-1);
        incremental[i] = logp.toFloatArray()[ids[i + 1]];
      }
    }
    for (int i = 0; i < t - 1; i++) {
      assertEquals(full[i], incremental[i], TOL, "token " + i);
    }
  }

  @Test
  void rightPaddedScoringEqualsSingleRequests() {
    LanguageModel lm = stories();
    String[] texts = {"The cat sat.", "Lily went to the park with her mom and dad to play.",
        "Tom had a big red ball and he loved it very much."};
    List<int[]> prompts = new ArrayList<>();
    List<int[]> responses = new ArrayList<>();
    for (String s : texts) {
      int[] ids = lm.tokenizer().encode(s, true);
      prompts.add(Arrays.copyOf(ids, 3));
      responses.add(Arrays.copyOfRange(ids, 3, ids.length));
    }
    List<float[]> batched = lm.logprobs(prompts, responses, null, 8);
    for (int i = 0; i < texts.length; i++) {
      float[] alone = lm.logprobs(List.of(prompts.get(i)), List.of(responses.get(i)), null, 1)
          .get(0);
      assertEquals(responses.get(i).length, alone.length);
      for (int j = 0; j < alone.length; j++) {
        assertEquals(alone[j], batched.get(i)[j], TOL, texts[i] + " token " + j);
      }
    }
  }

  @Test
  void leftPaddedGenerationEqualsSingleRequests() {
    LanguageModel lm = stories();
    List<int[]> prompts = List.of(lm.tokenizer().encode("Once", true),
        lm.tokenizer().encode("The little dog wanted to", true),
        lm.tokenizer().encode("One day, Lily and her brother went", true));
    GenerationParams greedy = GenerationParams.greedy(30, lm.eosIds());
    long[] seeds = {1, 2, 3};
    List<LanguageModel.Generation> batched = lm.generate(prompts, seeds, greedy, null, 8);
    for (int i = 0; i < prompts.size(); i++) {
      LanguageModel.Generation alone = lm.generate(List.of(prompts.get(i)),
          new long[] {seeds[i]}, greedy, null, 1).get(0);
      assertArrayEquals(alone.tokens(), batched.get(i).tokens(), "prompt " + i);
    }
  }

  @Test
  void sampledRequestDependsOnlyOnItsSeed() {
    LanguageModel lm = stories();
    GenerationParams p = new GenerationParams(40, 1.0, 0.9, lm.eosIds());
    int[] bos = {1};
    int[] other = lm.tokenizer().encode("Tom and Sue", true);
    int[] alone = lm.generate(List.of(bos), new long[] {7}, p, null, 1).get(0).tokens();
    List<LanguageModel.Generation> mixed = lm.generate(List.of(other, bos, other),
        new long[] {100, 7, 200}, p, null, 3);
    assertArrayEquals(alone, mixed.get(1).tokens());
    int[] otherSeed = lm.generate(List.of(bos), new long[] {8}, p, null, 1).get(0).tokens();
    assertTrue(!Arrays.equals(alone, otherSeed), "a different seed gives a different sample");
    assertArrayEquals(alone, lm.generate(List.of(bos), new long[] {7}, p, null, 1).get(0)
        .tokens(), "the same seed reproduces the sample");
  }

  @Test
  void generationStopsAtEosAndLength() {
    LanguageModel lm = stories();
    LanguageModel.Generation g = lm.generate(List.of(new int[] {1}), new long[] {0},
        GenerationParams.greedy(5, lm.eosIds()), null, 1).get(0);
    assertEquals(5, g.tokens().length);
    assertEquals("length", g.finishReason());
    // Greedy from BOS ends its story with BOS (id 1) within 512 positions: an eos id.
    LanguageModel.Generation full = lm.generate(List.of(new int[] {1}), new long[] {0},
        GenerationParams.greedy(600, lm.eosIds()), null, 1).get(0);
    assertTrue(full.finishReason().equals("eos") || full.finishReason().equals("context"),
        full.finishReason());
    for (int tok : full.tokens()) {
      assertTrue(tok != 1 && tok != 2, "eos never appears in the output");
    }
  }
}
