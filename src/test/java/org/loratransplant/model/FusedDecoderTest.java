package org.loratransplant.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import java.util.EnumSet;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.LoraConfig;
import org.loratransplant.testing.SharedData;

/**
 * The fused inference decoder computes what the reference forward ({@link LlamaModel#hidden})
 * computes: on the architectures whose folds differ (q/k/v biases and tied embeddings in qwen2,
 * grouped-query heads and llama3 RoPE, a single kv head in mistral), with no adapter and with a
 * LoRA on every projection whose B is not zero, so each folded delta matters.
 */
class FusedDecoderTest {

  @Test
  void matchesTheReferenceForwardWithAndWithoutAnAdapter() {
    for (String name : List.of("tiny-qwen2", "tiny-llama3", "tiny-mistral")) {
      try (LanguageModel lm = LanguageModel.load(SharedData.hfReference(name), Device.cpu());
          LoraAdapter adapter = randomAdapter(lm, 3)) {
        int v = lm.config().vocabSize();
        int[] ids = new SplittableRandom(7).ints(24, 3, v).toArray();
        int[] prompt = {ids[0]};
        int[] response = java.util.Arrays.copyOfRange(ids, 1, ids.length);
        for (LoraAdapter a : new LoraAdapter[] {null, adapter}) {
          float[] fused = lm.logprobs(List.of(prompt), List.of(response), a, 1).get(0);
          float[] reference = referenceLogprobs(lm, ids, a);
          for (int i = 0; i < fused.length; i++) {
            assertEquals(reference[i], fused[i], 2e-4 * (1 + Math.abs(reference[i])),
                name + (a == null ? " base" : " adapted") + " token " + i);
          }
        }
        float[] base = lm.logprobs(List.of(prompt), List.of(response), null, 1).get(0);
        float[] adapted = lm.logprobs(List.of(prompt), List.of(response), adapter, 1).get(0);
        double change = 0;
        for (int i = 0; i < base.length; i++) {
          change = Math.max(change, Math.abs(base[i] - adapted[i]));
        }
        assertTrue(change > 1e-3, name + ": the folded adapter changes the log-probs (" + change
            + ")");
      }
    }
  }

  @Test
  void theKeptBaseCopyIsRemadeWhenAnAdapterIsMergedIntoTheWeights() {
    try (LanguageModel lm = LanguageModel.load(SharedData.hfReference("tiny-llama3"),
        Device.cpu()); LoraAdapter adapter = randomAdapter(lm, 4)) {
      int[] prompt = {1};
      int[] response = {5, 9, 200, 31, 17};
      float[] active = lm.logprobs(List.of(prompt), List.of(response), adapter, 1).get(0);
      float[] before = lm.logprobs(List.of(prompt), List.of(response), null, 1).get(0);
      adapter.merge(lm.model());
      float[] merged = lm.logprobs(List.of(prompt), List.of(response), null, 1).get(0);
      adapter.unmerge(lm.model());
      float[] after = lm.logprobs(List.of(prompt), List.of(response), null, 1).get(0);
      for (int i = 0; i < response.length; i++) {
        assertEquals(active[i], merged[i], 1e-4, "merged base equals the active adapter");
        assertEquals(before[i], after[i], 1e-4, "unmerged base equals the base");
      }
      assertNotSame(active, before);
      assertTrue(Math.abs(active[0] - before[0]) + Math.abs(active[4] - before[4]) > 1e-3);
    }
  }

  /** Teacher-forced log-probs of ids[1..] through the reference forward. */
  private static float[] referenceLogprobs(LanguageModel lm, int[] ids, LoraAdapter adapter) {
    LlamaModel m = lm.model();
    int t = ids.length;
    long[] all = new long[t];
    long[] positions = new long[t];
    for (int i = 0; i < t; i++) {
      all[i] = ids[i];
      positions[i] = i;
    }
    try (ai.djl.ndarray.NDManager scope = m.manager().newSubManager()) {
      float[] logp = m.logits(m.hidden(scope.create(all, new ai.djl.ndarray.types.Shape(1, t)),
          scope.create(positions, new ai.djl.ndarray.types.Shape(1, t)),
          scope.create(AttentionMasks.causal(t, 0, m.config().slidingWindow()),
              new ai.djl.ndarray.types.Shape(1, 1, 1, t, t)), adapter, false))
          .logSoftmax(-1).toFloatArray();
      int v = m.config().vocabSize();
      float[] out = new float[t - 1];
      for (int i = 0; i + 1 < t; i++) {
        out[i] = logp[i * v + ids[i + 1]];
      }
      return out;
    }
  }

  /** A LoRA on all seven projections with random A and B. */
  private static LoraAdapter randomAdapter(LanguageModel lm, long seed) {
    LoraConfig c = new LoraConfig(4, 8, 0, EnumSet.allOf(Projection.class), List.of(), false, "test");
    LoraAdapter a = LoraAdapter.create(c, lm.config(), lm.model().manager(), seed);
    SplittableRandom rng = new SplittableRandom(seed);
    for (LoraAdapter.Pair p : a.pairs().values()) {
      float[] b = new float[(int) p.bT().size()];
      for (int i = 0; i < b.length; i++) {
        b[i] = (float) (rng.nextGaussian() * 0.05);
      }
      p.bT().set(b);
    }
    return a;
  }
}
