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
 * Properties of the runtime that no fixture covers directly: incremental decoding with the fused
 * decoder and its cache agrees with the reference forward over the whole sequence, batching with
 * right padding (scoring) and left padding (generation) leaves every request's result unchanged,
 * and a sampled request depends on its own seed only.
 */
class BatchingConsistencyTest {
  private static final double TOL = 2e-4;

  private static LanguageModel stories() {
    return Models.shared(SharedData.model("stories260K"));
  }

  @Test
  void cachedDecodingMatchesTheReferenceForward() {
    LanguageModel lm = stories();
    LlamaModel m = lm.model();
    int[] ids = lm.tokenizer().encode("Once upon a time, there was a dog named Max.", true);
    int t = ids.length;
    int prompt = 3;
    float[] reference = new float[t - 1];
    float[] incremental = new float[t - 1];
    Arrays.fill(incremental, Float.NaN);
    int v = m.config().vocabSize();
    try (NDManager scope = m.manager().newSubManager();
        FusedDecoder fused = FusedDecoder.of(m, null)) {
      long[] all = new long[t];
      long[] positions = new long[t];
      for (int i = 0; i < t; i++) {
        all[i] = ids[i];
        positions[i] = i;
      }
      // The reference: LlamaModel's plain forward over the whole sequence at once.
      float[] logp = m.logits(m.hidden(scope.create(all, new Shape(1, t)),
          scope.create(positions, new Shape(1, t)),
          scope.create(AttentionMasks.causal(t, 0, 0), new Shape(1, 1, 1, t, t)), null, false))
          .logSoftmax(-1).toFloatArray();
      for (int i = 0; i + 1 < t; i++) {
        reference[i] = logp[i * v + ids[i + 1]];
      }
      // The fused decoder: a 3-token prompt into a fresh cache, then one token per step.
      FusedDecoder.Prefill first = fused.prefill(
          scope.create(Arrays.copyOf(all, prompt), new Shape(1, prompt)),
          scope.create(Arrays.copyOf(positions, prompt), new Shape(1, prompt)),
          scope.create(AttentionMasks.causal(prompt, 0, 0), FusedDecoder.maskShape(1, prompt,
              prompt)), t - 1, 0, scope);
      try (KvCache cache = first.cache()) {
        incremental[prompt - 1] = first.output().logSoftmax(-1).toFloatArray()[ids[prompt]];
        for (int i = prompt; i + 1 < t; i++) {
          try (NDManager step = scope.newSubManager()) {
            NDArray id = step.create(new long[] {ids[i]}, new Shape(1, 1));
            NDArray pos = step.create(new long[] {i}, new Shape(1, 1));
            NDArray mask = step.create(AttentionMasks.causal(1, i, 0),
                FusedDecoder.maskShape(1, 1, i + 1));
            NDArray out = fused.step(cache, id, pos, mask, i, 0, step).logSoftmax(-1);
            incremental[i] = out.toFloatArray()[ids[i + 1]];
          }
        }
      }
    }
    for (int i = prompt - 1; i < t - 1; i++) {
      assertEquals(reference[i], incremental[i], TOL, "token " + i);
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

  @Test
  void lanesSplitABatchWithoutChangingAnyResult() {
    // A private copy: lanes are a setting of the model object, and the shared one is used by
    // other tests at the same time.
    try (LanguageModel lm = LanguageModel.load(SharedData.model("stories260K"),
        ai.djl.Device.cpu())) {
      List<int[]> prompts = new ArrayList<>();
      List<int[]> responses = new ArrayList<>();
      long[] seeds = new long[5];
      for (int i = 0; i < 5; i++) {
        prompts.add(lm.tokenizer().encode("Once upon a time " + "there was ".repeat(i), true));
        responses.add(lm.tokenizer().encode("a little dog named Max" + ".".repeat(i), false));
        seeds[i] = 40 + i;
      }
      GenerationParams p = new GenerationParams(24, 1.0, 0.9, lm.eosIds());
      List<float[]> scoredInOne = lm.logprobs(prompts, responses, null, 5);
      List<LanguageModel.Generation> inOne = lm.generate(prompts, seeds, p, null, 5);
      lm.setLanes(2);
      List<float[]> scoredInTwo = lm.logprobs(prompts, responses, null, 5);
      List<LanguageModel.Generation> inTwo = lm.generate(prompts, seeds, p, null, 5);
      for (int i = 0; i < 5; i++) {
        assertArrayEquals(scoredInOne.get(i), scoredInTwo.get(i), (float) TOL, "scored " + i);
        assertArrayEquals(inOne.get(i).tokens(), inTwo.get(i).tokens(), "sampled " + i);
      }
    }
  }
}
