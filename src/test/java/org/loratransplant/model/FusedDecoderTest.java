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
  void anAdapterBesideTheWeightsAndFoldedIntoCopiesScoresAsTheReferenceDoes() {
    // The decoder runs a LoRA beside the shared weights on real models and folds it into
    // copies on tiny ones; both must compute the reference forward, over q/k/v, o, gate/up and
    // down, and on a batch long enough for the oneDNN products.
    for (String name : List.of("tiny-qwen2", "tiny-llama3")) {
      try (LanguageModel lm = LanguageModel.load(SharedData.hfReference(name), Device.cpu());
          LoraAdapter adapter = randomAdapter(lm, 6)) {
        LlamaModel m = lm.model();
        int t = 80;
        int[] ids = new SplittableRandom(9).ints(t, 3, lm.config().vocabSize()).toArray();
        float[] reference = referenceLogprobs(lm, ids, adapter);
        long[] all = java.util.Arrays.stream(ids).asLongStream().toArray();
        long[] rows = java.util.stream.LongStream.range(0, t - 1).toArray();
        long[] targets = java.util.Arrays.copyOfRange(all, 1, t);
        for (boolean fold : new boolean[] {true, false}) {
          try (ai.djl.ndarray.NDManager scope = m.manager().newSubManager();
              FusedDecoder dec = FusedDecoder.of(m, adapter, LlamaScript.of(m.config(),
                  Device.cpu()), fold)) {
            assertEquals(fold, dec.folded());
            float[] got = dec.logprobs(scope.create(all, new ai.djl.ndarray.types.Shape(1, t)),
                scope.create(rows), scope.create(targets), scope.create(
                    AttentionMasks.causal(t, 0, 0), FusedDecoder.maskShape(1, t, t)), scope)
                .toFloatArray();
            for (int i = 0; i < got.length; i++) {
              assertEquals(reference[i], got[i], 2e-4 * (1 + Math.abs(reference[i])),
                  name + (fold ? " folded" : " beside") + " token " + i);
            }
            assertTrue(dec.ownedBytes() > 0);
          }
        }
      }
    }
  }

  @Test
  void theBaseDecoderRunsOnTheModelsOwnWeights() {
    // No copy: a change written into a model weight shows in a decoder made before it.
    try (LanguageModel lm = LanguageModel.load(SharedData.hfReference("tiny-llama3"),
        Device.cpu())) {
      LlamaModel m = lm.model();
      int t = 6;
      long[] ids = {1, 5, 9, 200, 31, 17};
      try (ai.djl.ndarray.NDManager scope = m.manager().newSubManager();
          FusedDecoder dec = FusedDecoder.of(m, null)) {
        java.util.function.Supplier<float[]> score = () -> dec.logprobs(
            scope.create(ids, new ai.djl.ndarray.types.Shape(1, t)),
            scope.create(new long[] {0, 1, 2, 3, 4}), scope.create(new long[] {5, 9, 200, 31, 17}),
            scope.create(AttentionMasks.causal(t, 0, 0), FusedDecoder.maskShape(1, t, t)), scope)
            .toFloatArray();
        float[] before = score.get();
        m.linear(0, Projection.V_PROJ).weightT().muli(3f);
        m.linear(1, Projection.DOWN_PROJ).weight().muli(-2f);
        float[] after = score.get();
        double moved = 0;
        for (int i = 0; i < before.length; i++) {
          moved = Math.max(moved, Math.abs(after[i] - before[i]));
        }
        assertTrue(moved > 1e-3, "the decoder sees the model's weights (moved " + moved + ")");
        assertTrue(dec.ownedBytes() <= 4L * (m.config().hiddenSize() + 2),
            "the base decoder holds " + dec.ownedBytes() + " bytes of its own");
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

  @Test
  void oneDnnAndPlainProductsScoreABatchAlikeAndAsTheReferenceDoes() {
    // 4 x 40 positions are 160 rows: the projections run on oneDNN in the default module and on
    // plain products in the portable one (which GPUs use); both must match the reference, for
    // positions picked in any order.
    try (LanguageModel lm = LanguageModel.load(SharedData.hfReference("tiny-qwen2"),
        Device.cpu())) {
      LlamaModel m = lm.model();
      int b = 4;
      int t = 40;
      long[] ids = new SplittableRandom(11).longs((long) b * t, 3, lm.config().vocabSize())
          .toArray();
      long[] positions = new long[b * t];
      long[] targets = new long[b * t];
      for (int i = 0; i < b * t; i++) {
        positions[i] = i % t;
        targets[i] = (i + 1) % t == 0 ? 0 : ids[i + 1];
      }
      try (ai.djl.ndarray.NDManager scope = m.manager().newSubManager();
          FusedDecoder oneDnn = FusedDecoder.of(m, null);
          FusedDecoder plain = FusedDecoder.of(m, null, LlamaScript.portable(m.config(),
              Device.cpu()), null)) {
        ai.djl.ndarray.NDArray idArr = scope.create(ids, new ai.djl.ndarray.types.Shape(b, t));
        ai.djl.ndarray.NDArray posArr = scope.create(positions,
            new ai.djl.ndarray.types.Shape(b, t));
        ai.djl.ndarray.NDArray tgt = scope.create(targets, new ai.djl.ndarray.types.Shape(b, t));
        // Every position but the first of each row, in a shuffled order.
        List<Long> chosen = new java.util.ArrayList<>();
        for (long i = 0; i < (long) b * t; i++) {
          if (i % t != 0) {
            chosen.add(i);
          }
        }
        java.util.Collections.shuffle(chosen, new java.util.Random(3));
        long[] rows = chosen.stream().mapToLong(Long::longValue).toArray();
        long[] picked = java.util.Arrays.stream(rows).map(r -> targets[(int) r]).toArray();
        ai.djl.ndarray.NDArray rowArr = scope.create(rows);
        ai.djl.ndarray.NDArray pickedArr = scope.create(picked);
        ai.djl.ndarray.NDArray mask = scope.create(AttentionMasks.causal(t, 0, 0),
            FusedDecoder.maskShape(1, t, t));
        float[] a = oneDnn.logprobs(idArr, rowArr, pickedArr, mask, scope).toFloatArray();
        float[] p = plain.logprobs(idArr, rowArr, pickedArr, mask, scope).toFloatArray();
        float[] ref = m.logits(m.hidden(idArr, posArr, scope.create(AttentionMasks.causal(t, 0,
            0), new ai.djl.ndarray.types.Shape(1, 1, 1, t, t)), null, false)).logSoftmax(-1)
            .gather(tgt.reshape(b, t, 1), -1).toFloatArray();
        assertEquals(rows.length, a.length);
        for (int n = 0; n < rows.length; n++) {
          float want = ref[(int) rows[n]];
          assertEquals(want, a[n], 2e-4 * (1 + Math.abs(want)), "oneDNN position " + rows[n]);
          assertEquals(want, p[n], 2e-4 * (1 + Math.abs(want)), "plain position " + rows[n]);
        }
      }
    }
  }

  @Test
  void theKeptAdapterCopyIsRemadeWhenTheAdapterWeightsChangeInPlace() {
    try (LanguageModel lm = LanguageModel.load(SharedData.hfReference("tiny-llama3"),
        Device.cpu()); LoraAdapter adapter = randomAdapter(lm, 5)) {
      int[] ids = {1, 5, 9, 200, 31, 17, 44};
      int[] prompt = {ids[0]};
      int[] response = java.util.Arrays.copyOfRange(ids, 1, ids.length);
      float[] first = lm.logprobs(List.of(prompt), List.of(response), adapter, 1).get(0);
      float[] again = lm.logprobs(List.of(prompt), List.of(response), adapter, 1).get(0);
      org.junit.jupiter.api.Assertions.assertArrayEquals(first, again, "the kept copy serves");
      assertEquals(1, lm.decoderStats().builds(), "a second call with the same adapter and "
          + "unchanged weights makes no new decoder");
      // Training updates B in place, as this does, and bumps the adapter's version: the next
      // call must see the new weights.
      LoraAdapter.Pair pair = adapter.pairs().values().iterator().next();
      float[] b = pair.bT().toFloatArray();
      for (int i = 0; i < b.length; i++) {
        b[i] = b[i] * -3 + 0.01f;
      }
      pair.bT().set(b);
      adapter.weightsChanged();
      float[] changed = lm.logprobs(List.of(prompt), List.of(response), adapter, 1).get(0);
      float[] reference = referenceLogprobs(lm, ids, adapter);
      double moved = 0;
      for (int i = 0; i < changed.length; i++) {
        assertEquals(reference[i], changed[i], 2e-4 * (1 + Math.abs(reference[i])), "token " + i);
        moved = Math.max(moved, Math.abs(changed[i] - first[i]));
      }
      assertTrue(moved > 1e-3, "the change of B shows in the log-probs (" + moved + ")");
      assertEquals(2, lm.decoderStats().builds());
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
