package org.loratransplant.lora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.model.Projection;
import org.loratransplant.testing.Models;
import org.loratransplant.testing.SharedData;
import org.loratransplant.train.LoraTrainer;
import org.loratransplant.train.TrainerConfig;
import org.loratransplant.train.TrainingExample;

/**
 * Training continues an adapter read from disk (CA-LoRA trains the inherited LoRA) exactly as it
 * would the same values made in memory. A parameter built with {@code transpose().duplicate()} is
 * strided; autograd then hands back a gradient buffer that is not the one the trainer zeroes, so
 * gradients piled up across steps (AdaLoRA went NaN that way).
 */
class TrainLoadedAdapterTest {
  @TempDir Path tmp;

  @Test
  void anAdapterReadFromDiskTrainsLikeTheSameValuesMadeInMemory() {
    LanguageModel lm = Models.shared(SharedData.model("stories260K"));
    LoraConfig cfg = new LoraConfig(4, 8, 0.05, EnumSet.of(Projection.Q_PROJ, Projection.DOWN_PROJ),
        List.of(), false, "stories260K");
    SplittableRandom rng = new SplittableRandom(5);
    Map<LoraAdapter.Key, LoraAdapter.Matrices> values = new LinkedHashMap<>();
    for (int l = 0; l < lm.config().numLayers(); l++) {
      for (Projection p : cfg.targetModules()) {
        float[] a = new float[cfg.r() * p.inFeatures(lm.config())];
        float[] b = new float[p.outFeatures(lm.config()) * cfg.r()];
        for (int i = 0; i < a.length; i++) {
          a[i] = (float) (rng.nextGaussian() * 0.1);
        }
        for (int i = 0; i < b.length; i++) {
          b[i] = (float) (rng.nextGaussian() * 0.1);
        }
        values.put(new LoraAdapter.Key(l, p), new LoraAdapter.Matrices(a, b));
      }
    }
    List<TrainingExample> data = new ArrayList<>();
    for (String t : new String[] {"Lily liked to play with her red ball in the park.",
        "Tom saw a big dog. The dog was happy.", "The sun was warm and the sky was blue.",
        "Ben had a toy car. He played with it all day."}) {
      int[] ids = lm.tokenizer().encode(t, true);
      data.add(TrainingExample.full(Arrays.copyOf(ids, 3), Arrays.copyOfRange(ids, 3,
          ids.length)));
    }
    TrainerConfig tc = new TrainerConfig(1e-2, 3, 2, 0.01, 0, 1.0, 1, 7, 0,
        TrainerConfig.LossNormaliser.WEIGHT_SUM, 0, 0);
    try (LoraAdapter made = LoraAdapter.of(cfg, lm.config(), lm.model().manager(), values)) {
      PeftFormat.write(made, tmp.resolve("a"));
    }
    try (LoraAdapter loaded = PeftFormat.read(tmp.resolve("a"), lm.config(),
            lm.model().manager());
        LoraAdapter fresh = LoraAdapter.create(cfg, lm.config(), lm.model().manager(), 1)) {
      for (int i = 0; i < fresh.parameters().size(); i++) { // same values, contiguous buffers
        fresh.parameters().get(i).set(loaded.parameters().get(i).toFloatArray());
      }
      LoraTrainer.Result rl = new LoraTrainer(tc).train(lm, loaded, data, null);
      LoraTrainer.Result rf = new LoraTrainer(tc).train(lm, fresh, data, null);
      assertEquals(rf.losses().size(), rl.losses().size());
      for (int s = 0; s < rf.losses().size(); s++) {
        assertEquals(rf.losses().get(s), rl.losses().get(s), 1e-4, "loss of step " + s);
      }
      double maxDiff = 0;
      for (int i = 0; i < fresh.parameters().size(); i++) {
        float[] x = fresh.parameters().get(i).toFloatArray();
        float[] y = loaded.parameters().get(i).toFloatArray();
        for (int j = 0; j < x.length; j++) {
          maxDiff = Math.max(maxDiff, Math.abs(x[j] - y[j]));
        }
      }
      assertTrue(maxDiff < 1e-5, "trained parameters differ by " + maxDiff);
    }
  }
}
