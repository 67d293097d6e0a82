package org.loratransplant.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import java.util.EnumSet;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.LoraConfig;
import org.loratransplant.lora.adalora.AdaLoraAdapter;
import org.loratransplant.lora.adalora.AdaLoraConfig;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.model.Projection;
import org.loratransplant.testing.SharedData;

/**
 * Inference keeps the decoder it made for an adapter and remakes it only when the adapter's
 * version says its weights changed: a training step must be seen by the next scoring call, and
 * scoring again with nothing changed must not make a new decoder.
 */
class AdapterVersionTest {
  private static final int[] PROMPT = {1};
  private static final int[] RESPONSE = {5, 9, 200, 31, 17, 44, 3};

  @Test
  void aTrainingStepIsSeenByTheNextScoreAndScoringAgainReusesTheDecoder() {
    try (LanguageModel lm = LanguageModel.load(SharedData.model("stories260K"), Device.cpu());
        LoraAdapter adapter = LoraAdapter.create(new LoraConfig(4, 8, 0,
            EnumSet.allOf(Projection.class), List.of(), false, "test"), lm.config(),
            lm.model().manager(), 1)) {
      float[] before = score(lm, adapter);
      long builds = lm.decoderStats().builds();
      long version = adapter.weightsVersion();
      assertArrayEquals(before, score(lm, adapter), "scoring again gives the same log-probs");
      assertEquals(builds, lm.decoderStats().builds(), "and makes no new decoder");

      TrainerConfig tc = new TrainerConfig(5e-2, 1, 1, 0, 0, 1, 1, 1, 0,
          TrainerConfig.LossNormaliser.WEIGHT_SUM, 0, 0);
      new LoraTrainer(tc).train(lm, adapter, List.of(TrainingExample.full(PROMPT, RESPONSE)),
          null);
      assertTrue(adapter.weightsVersion() > version, "the optimiser step bumps the version");
      float[] after = score(lm, adapter);
      assertEquals(builds + 1, lm.decoderStats().builds(), "the step makes a new decoder");
      double moved = 0;
      for (int i = 0; i < before.length; i++) {
        moved = Math.max(moved, Math.abs(after[i] - before[i]));
      }
      assertTrue(moved > 1e-3, "the trained adapter scores differently (moved " + moved + ")");
      // The kept decoder computes what the training forward computes with the new weights.
      float[] reference = referenceScore(lm, adapter);
      for (int i = 0; i < after.length; i++) {
        assertEquals(reference[i], after[i], 2e-4 * (1 + Math.abs(reference[i])), "token " + i);
      }
    }
  }

  @Test
  void anAdaLoraTrainingStepIsSeenByTheNextScore() {
    try (LanguageModel lm = LanguageModel.load(SharedData.model("stories260K"), Device.cpu())) {
      AdaLoraConfig ac = new AdaLoraConfig(4, 2, 8, 0, EnumSet.of(Projection.Q_PROJ,
          Projection.V_PROJ), List.of(), 0, 0, 1, 0.85, 0.85, 0.5, 2, "stories260K");
      try (AdaLoraAdapter adapter = AdaLoraAdapter.create(ac, lm.config(), lm.model().manager(),
          3)) {
        float[] before = score(lm, adapter);
        long version = adapter.weightsVersion();
        TrainerConfig tc = new TrainerConfig(5e-2, 1, 1, 0, 0, 1, 1, 1, 0,
            TrainerConfig.LossNormaliser.WEIGHT_SUM, 0, 0);
        new org.loratransplant.lora.adalora.AdaLoraTrainer(tc).train(lm, adapter, List.of(
            TrainingExample.full(PROMPT, RESPONSE), TrainingExample.full(PROMPT, RESPONSE)));
        assertTrue(adapter.weightsVersion() > version);
        float[] after = score(lm, adapter);
        double moved = 0;
        for (int i = 0; i < before.length; i++) {
          moved = Math.max(moved, Math.abs(after[i] - before[i]));
        }
        assertTrue(moved > 1e-4, "the trained AdaLoRA scores differently (moved " + moved + ")");
        float[] reference = referenceScore(lm, adapter);
        for (int i = 0; i < after.length; i++) {
          assertEquals(reference[i], after[i], 2e-4 * (1 + Math.abs(reference[i])));
        }
      }
    }
  }

  private static float[] score(LanguageModel lm, org.loratransplant.model.Adapter a) {
    return lm.logprobs(List.of(PROMPT), List.of(RESPONSE), a, 1).get(0);
  }

  /** An additive causal mask: 0 where a query may see a key, a large negative number after. */
  private static float[] causal(int t) {
    float[] m = new float[t * t];
    for (int i = 0; i < t; i++) {
      for (int j = i + 1; j < t; j++) {
        m[i * t + j] = -1e9f;
      }
    }
    return m;
  }

  /** The same log-probs through the training forward (no kept decoder involved). */
  private static float[] referenceScore(LanguageModel lm, org.loratransplant.model.Adapter a) {
    var m = lm.model();
    int t = PROMPT.length + RESPONSE.length;
    long[] ids = new long[t];
    long[] pos = new long[t];
    ids[0] = PROMPT[0];
    for (int i = 0; i < RESPONSE.length; i++) {
      ids[i + 1] = RESPONSE[i];
    }
    for (int i = 0; i < t; i++) {
      pos[i] = i;
    }
    try (ai.djl.ndarray.NDManager s = m.manager().newSubManager()) {
      float[] lp = m.logits(m.hidden(s.create(ids, new ai.djl.ndarray.types.Shape(1, t)),
          s.create(pos, new ai.djl.ndarray.types.Shape(1, t)),
          s.create(causal(t), new ai.djl.ndarray.types.Shape(1, 1, 1, t, t)), a, false))
          .logSoftmax(-1)
          .toFloatArray();
      int v = m.config().vocabSize();
      float[] out = new float[RESPONSE.length];
      for (int i = 0; i < RESPONSE.length; i++) {
        out[i] = lp[i * v + RESPONSE[i]];
      }
      return out;
    }
  }
}
