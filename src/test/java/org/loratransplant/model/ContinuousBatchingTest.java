package org.loratransplant.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.jupiter.api.Test;
import org.loratransplant.model.LanguageModel.Batching;
import org.loratransplant.model.LanguageModel.Generation;
import org.loratransplant.testing.Models;
import org.loratransplant.testing.SharedData;

/**
 * Continuous batching ({@link ContinuousBatch}) against requests run alone on the static path
 * (batch 1: no padding, no other rows) and against transformers' own greedy tokens: rows are
 * refilled while others decode (more requests than rows, different prompt lengths, limits and
 * stop points), and the cache is cut down at the end; none of it may change a request's tokens.
 */
class ContinuousBatchingTest {

  private static LanguageModel stories() {
    return Models.shared(SharedData.model("stories260K"));
  }

  /** Ids whose piece holds a period: stories stop at a sentence's end, each at its own step. */
  private static int[] periodStops(LanguageModel lm) {
    int v = lm.config().vocabSize();
    int[] all = new int[v];
    for (int i = 0; i < v; i++) {
      all[i] = i;
    }
    String[] pieces = lm.tokenizer().pieces(all);
    List<Integer> stops = new ArrayList<>();
    for (int e : lm.eosIds()) {
      stops.add(e);
    }
    for (int i = 0; i < v; i++) {
      if (pieces[i].contains(".")) {
        stops.add(i);
      }
    }
    return stops.stream().mapToInt(Integer::intValue).toArray();
  }

  private static List<int[]> storyPrompts(LanguageModel lm) {
    String[] texts = {"Once", "The little dog wanted to", "One day, Lily and her brother went",
        "Tom", "Sue had a red ball. She", "The sun", "A big bird flew over the house and",
        "Max was sad because", "Mom said", "There was a tree in the park. It was very"};
    List<int[]> prompts = new ArrayList<>();
    for (String t : texts) {
      prompts.add(lm.tokenizer().encode(t, true));
    }
    return prompts;
  }

  private static void assertSameAsAlone(LanguageModel lm, List<int[]> prompts, long[] seeds,
      int[] limits, GenerationParams p, List<Generation> got, String what) {
    for (int i = 0; i < prompts.size(); i++) {
      Generation alone = lm.generate(List.of(prompts.get(i)), new long[] {seeds[i]},
          new int[] {limits[i]}, p, null, 1, Batching.STATIC, null).get(0);
      assertArrayEquals(alone.tokens(), got.get(i).tokens(), what + " request " + i);
      assertEquals(alone.finishReason(), got.get(i).finishReason(), what + " request " + i);
    }
  }

  @Test
  void greedyEqualsEachRequestAloneOnStories() {
    LanguageModel lm = stories();
    List<int[]> prompts = storyPrompts(lm);
    int n = prompts.size();
    long[] seeds = new long[n];
    int[] limits = {40, 5, 60, 1, 33, 0, 48, 12, 60, 27};
    GenerationParams p = GenerationParams.greedy(60, periodStops(lm));
    Set<Integer> reported = ConcurrentHashMap.newKeySet();
    // 3 rows for 10 requests: rows are refilled several times while the others decode.
    List<Generation> got = lm.generate(prompts, seeds, limits, p, null, 3, Batching.CONTINUOUS,
        (i, g) -> assertTrue(reported.add(i), "request " + i + " reported twice"));
    assertEquals(n, reported.size(), "every request is reported as it ends");
    Set<String> reasons = new HashSet<>();
    Set<Integer> lengths = new HashSet<>();
    for (Generation g : got) {
      reasons.add(g.finishReason());
      lengths.add(g.tokens().length);
    }
    assertTrue(reasons.contains("eos") && reasons.contains("length"), reasons.toString());
    assertTrue(lengths.size() >= 5, "requests end at different steps: " + lengths);
    assertSameAsAlone(lm, prompts, seeds, limits, p, got, "stories greedy");
  }

  @Test
  void twoLanesAndManyRowsGiveTheSameTokens() {
    LanguageModel lm = stories();
    List<int[]> prompts = storyPrompts(lm);
    long[] seeds = new long[prompts.size()];
    int[] limits = {40, 5, 60, 1, 33, 0, 48, 12, 60, 27};
    GenerationParams p = GenerationParams.greedy(60, periodStops(lm));
    List<Generation> one = lm.generate(prompts, seeds, limits, p, null, 4, Batching.CONTINUOUS,
        null);
    lm.setLanes(2);
    try {
      List<Generation> two = lm.generate(prompts, seeds, limits, p, null, 4,
          Batching.CONTINUOUS, null);
      // More rows than requests: one fill, no refill, then the cache shrinks.
      List<Generation> wide = lm.generate(prompts, seeds, limits, p, null, 32,
          Batching.CONTINUOUS, null);
      for (int i = 0; i < prompts.size(); i++) {
        assertArrayEquals(one.get(i).tokens(), two.get(i).tokens(), "lanes, request " + i);
        assertArrayEquals(one.get(i).tokens(), wide.get(i).tokens(), "rows, request " + i);
      }
    } finally {
      lm.setLanes(1);
    }
  }

  @Test
  void sampledEqualsTheStaticPathAndReproduces() {
    LanguageModel lm = stories();
    List<int[]> prompts = storyPrompts(lm);
    int n = prompts.size();
    long[] seeds = new long[n];
    for (int i = 0; i < n; i++) {
      seeds[i] = 1000 + i;
    }
    int[] limits = {40, 5, 60, 1, 33, 0, 48, 12, 60, 27};
    GenerationParams p = new GenerationParams(60, 1.0, 0.9, periodStops(lm));
    List<Generation> cont = lm.generate(prompts, seeds, limits, p, null, 3,
        Batching.CONTINUOUS, null);
    List<Generation> again = lm.generate(prompts, seeds, limits, p, null, 3,
        Batching.CONTINUOUS, null);
    List<Generation> statics = lm.generate(prompts, seeds, limits, p, null, 4,
        Batching.STATIC, null);
    for (int i = 0; i < n; i++) {
      assertArrayEquals(cont.get(i).tokens(), again.get(i).tokens(), "reproduces, " + i);
      // Each request draws from its own seeded stream in its own order: same samples.
      assertArrayEquals(statics.get(i).tokens(), cont.get(i).tokens(), "static, " + i);
    }
  }

  /**
   * GQA (4 query heads over 2 kv heads) with q/k/v biases: continuous batching against
   * transformers' greedy tokens for the fixture's three sequences, and against each alone with
   * mixed limits, on random prompts of mixed lengths.
   */
  @Test
  void greedyMatchesTransformersAndAloneOnQwen2() {
    Path dir = SharedData.hfReference("tiny-qwen2");
    JsonNode expected = SharedData.json(dir.resolve("expected.json"));
    LanguageModel lm = Models.shared(dir);
    List<int[]> prompts = new ArrayList<>();
    List<int[]> want = new ArrayList<>();
    for (JsonNode c : expected.get("cases")) {
      prompts.add(SharedData.ints(c.get("input_ids")));
      want.add(SharedData.ints(c.get("greedy_new_tokens")));
    }
    // Two rows for three sequences of 7, 12 and 20 tokens: the third joins when one ends.
    int[] hfLimits = {10, 4, 10};
    List<Generation> got = lm.generate(prompts, new long[3], hfLimits,
        GenerationParams.greedy(10, new int[0]), null, 2, Batching.CONTINUOUS, null);
    for (int i = 0; i < 3; i++) {
      assertArrayEquals(java.util.Arrays.copyOf(want.get(i), hfLimits[i]), got.get(i).tokens(),
          "transformers' greedy tokens, case " + i);
    }
    SplittableRandom rng = new SplittableRandom(5);
    List<int[]> random = new ArrayList<>();
    int n = 9;
    int[] limits = new int[n];
    for (int i = 0; i < n; i++) {
      int[] ids = new int[1 + rng.nextInt(25)];
      ids[0] = 1;
      for (int j = 1; j < ids.length; j++) {
        ids[j] = 3 + rng.nextInt(297);
      }
      random.add(ids);
      limits[i] = 1 + rng.nextInt(30);
    }
    // Stop ids: a few of the vocabulary, so some requests end early at their own step.
    GenerationParams p = GenerationParams.greedy(30, new int[] {7, 50, 123, 200, 250});
    long[] seeds = new long[n];
    List<Generation> cont = lm.generate(random, seeds, limits, p, null, 4,
        Batching.CONTINUOUS, null);
    assertSameAsAlone(lm, random, seeds, limits, p, cont, "qwen2 greedy");
  }

  @Test
  void badLimitsAreRefused() {
    LanguageModel lm = stories();
    GenerationParams p = GenerationParams.greedy(10, lm.eosIds());
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> lm.generate(List.of(new int[] {1}), new long[1], new int[] {11}, p, null, 1,
            Batching.CONTINUOUS, null));
    assertTrue(e.getMessage().contains("token limit 11"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> lm.generate(List.of(new int[] {1}),
        new long[1], new int[2], p, null, 1, Batching.CONTINUOUS, null));
  }
}
