package org.loratransplant.lora.adalora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.lora.LoraAdapter.Key;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.model.Projection;
import org.loratransplant.testing.SharedData;
import org.loratransplant.train.TrainerConfig;
import org.loratransplant.train.TrainingExample;

/**
 * AdaLoRA training on stories260K: the loss falls, the final pattern keeps exactly the target
 * budget (target_r x modules) with every pruned lambda 0 and ranks that differ per module, and
 * the trained adapter survives a write and read (PEFT layout) with the same outputs.
 */
class AdaLoraTrainerTest {
  @TempDir Path tmp;

  @Test
  void trainsPrunesToTheTargetBudgetAndRoundTrips() {
    List<TrainingExample> data = new ArrayList<>();
    SplittableRandom rng = new SplittableRandom(5);
    for (int i = 0; i < 16; i++) {
      int[] resp = new int[12];
      for (int j = 0; j < resp.length; j++) {
        resp[j] = 300 + (i % 4) * 10 + j % 3; // a learnable pattern per example class
      }
      data.add(TrainingExample.full(new int[] {1, 200 + rng.nextInt(50)}, resp));
    }
    TrainerConfig tc = new TrainerConfig(5e-2, 6, 4, 0, 0, 1.0, 1, 7, 0,
        TrainerConfig.LossNormaliser.WEIGHT_SUM, 0, 0);
    AdaLoraConfig ac = new AdaLoraConfig(4, 2, 8, 0, EnumSet.of(Projection.Q_PROJ,
        Projection.V_PROJ), List.of(), 4, 6, 1, 0.85, 0.85, 0.5, 24, "stories260K");
    try (LanguageModel lm = LanguageModel.load(SharedData.model("stories260K"), Device.cpu());
        AdaLoraAdapter a = AdaLoraAdapter.create(ac, lm.config(), lm.model().manager(), 3)) {
      AdaLoraTrainer t = new AdaLoraTrainer(tc);
      assertEquals(24, t.steps(data.size()));
      AdaLoraTrainer.Result r = t.train(lm, a, data);
      double first = r.losses().subList(0, 4).stream().mapToDouble(d -> d).average().orElseThrow();
      double last = r.losses().subList(20, 24).stream().mapToDouble(d -> d).average()
          .orElseThrow();
      assertTrue(last < 0.5 * first, r.losses().toString());
      int kept = 0;
      java.util.Set<Integer> ranks = new java.util.TreeSet<>();
      for (Map.Entry<Key, boolean[]> e : r.rankPattern().entrySet()) {
        AdaLoraAdapter.Triplets tr = a.modules().get(e.getKey());
        assertArrayEquals(e.getValue(), tr.kept());
        float[] lambda = tr.e().toFloatArray();
        for (int i = 0; i < lambda.length; i++) {
          if (!e.getValue()[i]) {
            assertEquals(0f, lambda[i], "pruned lambda of " + e.getKey() + " slot " + i);
          }
        }
        kept += tr.rank();
        ranks.add(tr.rank());
      }
      assertEquals(2 * 10, kept);
      assertTrue(ranks.size() > 1, "ranks should differ per module: " + ranks);
      AdaLoraFormat.write(a, tmp.resolve("ada"));
      int[] ids = {1, 210, 300, 301, 302, 300};
      try (AdaLoraAdapter b = AdaLoraFormat.read(tmp.resolve("ada"), lm.config(),
          lm.model().manager())) {
        assertArrayEquals(AdaLoraFormatTest.ours(lm, a, ids), AdaLoraFormatTest.ours(lm, b, ids),
            1e-5f);
      }
    }
  }
}
