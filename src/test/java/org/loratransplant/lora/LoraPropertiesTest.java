package org.loratransplant.lora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import java.util.EnumSet;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.loratransplant.model.HuggingFaceParityTest;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.model.Projection;
import org.loratransplant.testing.SharedData;

class LoraPropertiesTest {

  /**
   * The config's text (part of a training checkpoint's fingerprint) lists the modules in the
   * projections' declaration order whatever order they were given in, so a checkpoint written in
   * one JVM is accepted in the next (Set.copyOf's iteration order is randomised per JVM).
   */
  @Test
  void configTextIsTheSameWhateverTheModuleOrder() {
    var a = new LoraConfig(4, 8, 0, new java.util.LinkedHashSet<>(List.of(Projection.V_PROJ,
        Projection.DOWN_PROJ, Projection.Q_PROJ)), List.of(), false, "s");
    var b = new LoraConfig(4, 8, 0, new java.util.LinkedHashSet<>(List.of(Projection.Q_PROJ,
        Projection.V_PROJ, Projection.DOWN_PROJ)), List.of(), false, "s");
    assertEquals(a.toString(), b.toString());
    assertEquals(List.of(Projection.Q_PROJ, Projection.V_PROJ, Projection.DOWN_PROJ),
        List.copyOf(a.targetModules()));
  }

  @Test
  void zeroBAdapterLeavesLogitsUnchanged() {
    try (LanguageModel lm = LanguageModel.load(SharedData.model("stories260K"), Device.cpu());
        LoraAdapter a = LoraAdapter.create(all(), lm.config(), lm.model().manager(), 5)) {
      int[] ids = lm.tokenizer().encode("Once upon a time there was a cat.", true);
      float[] base = HuggingFaceParityTest.lastLogitsAndHidden(lm, ids)[0];
      float[] adapted = HuggingFaceParityTest.lastLogitsAndHidden(lm, ids, a)[0];
      // Equal up to float rounding: with an adapter each of q, k, v is a fresh array (its split
      // view plus the delta), without one a strided view of the stacked product, and the
      // attention products round differently on the two layouts (~3e-6 here).
      assertArrayEquals(base, adapted, 1e-5f);
    }
  }

  @Test
  void mergedEqualsUnmergedAndUnmergeRestoresTheBase() {
    try (LanguageModel lm = LanguageModel.load(SharedData.model("stories260K"), Device.cpu());
        LoraAdapter a = LoraAdapter.create(all(), lm.config(), lm.model().manager(), 5)) {
      SplittableRandom rng = new SplittableRandom(9);
      for (LoraAdapter.Pair p : a.pairs().values()) {
        float[] b = new float[(int) p.bT().size()];
        for (int i = 0; i < b.length; i++) {
          b[i] = (float) (rng.nextGaussian() * 0.05);
        }
        p.bT().set(b);
      }
      float[] before = lm.model().linear(2, Projection.DOWN_PROJ).weightT().toFloatArray();
      int[] ids = lm.tokenizer().encode("The dog ran to the park and played.", true);
      float[] active = HuggingFaceParityTest.lastLogitsAndHidden(lm, ids, a)[0];
      float[] base = HuggingFaceParityTest.lastLogitsAndHidden(lm, ids)[0];
      double change = 0;
      for (int i = 0; i < base.length; i++) {
        change = Math.max(change, Math.abs(active[i] - base[i]));
      }
      assertTrue(change > 0.1, "the adapter changes the logits (" + change + ")");
      a.merge(lm.model());
      float[] merged = HuggingFaceParityTest.lastLogitsAndHidden(lm, ids)[0];
      for (int i = 0; i < merged.length; i++) { // float32 rounding of W0 + sBA: relative 1e-5
        assertEquals(active[i], merged[i], 1e-5 * (1 + Math.abs(active[i])), "logit " + i);
      }
      a.unmerge(lm.model());
      float[] after = lm.model().linear(2, Projection.DOWN_PROJ).weightT().toFloatArray();
      assertArrayEquals(before, after, 1e-6f);
      float[] restored = HuggingFaceParityTest.lastLogitsAndHidden(lm, ids)[0];
      for (int i = 0; i < base.length; i++) {
        assertEquals(base[i], restored[i], 1e-5 * (1 + Math.abs(base[i])), "logit " + i);
      }
    }
  }

  @Test
  void initialisationFollowsPeftAndRespectsLayersToTransform() {
    try (LanguageModel lm = LanguageModel.load(SharedData.model("stories260K"), Device.cpu())) {
      LoraConfig c = new LoraConfig(4, 8, 0, EnumSet.of(Projection.V_PROJ), List.of(1, 3), true,
          "x");
      assertEquals(4.0, c.scaling(), 1e-12, "rsLoRA: alpha / sqrt(r)");
      try (LoraAdapter a = LoraAdapter.create(c, lm.config(), lm.model().manager(), 1)) {
        assertEquals(2, a.pairs().size());
        LoraAdapter.Pair p = a.pairs().get(new LoraAdapter.Key(3, Projection.V_PROJ));
        NDArray aT = p.aT();
        assertEquals(64, aT.getShape().get(0));
        double bound = 1 / Math.sqrt(64);
        float[] v = aT.toFloatArray();
        double max = 0;
        for (float x : v) {
          max = Math.max(max, Math.abs(x));
        }
        assertTrue(max <= bound && max > 0.8 * bound, "U(-1/sqrt(in), 1/sqrt(in)): " + max);
        assertEquals(0f, p.bT().abs().sum().getFloat());
      }
    }
  }

  private static LoraConfig all() {
    return new LoraConfig(4, 8, 0, EnumSet.allOf(Projection.class), List.of(), false, "s");
  }
}
