package org.loratransplant.train.objective;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.List;
import java.util.SplittableRandom;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.LoraConfig;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.model.Projection;
import org.loratransplant.train.TrainingExample;

/** Small stories texts and adapters shared by the objective tests. */
final class Fixtures {
  static final String[] TEXTS = {"Lily liked to play with her red ball in the park.",
      "Tom saw a big dog. The dog was happy and wagged its tail.",
      "One day, Sue found a little bird in the garden.",
      "Max and his mom went to the store to buy some milk."};

  private Fixtures() {}

  /** Each text with BOS, the first {@code promptTokens} ids as prompt, every response token 1. */
  static List<TrainingExample> examples(LanguageModel lm, int promptTokens) {
    List<TrainingExample> out = new ArrayList<>();
    for (String t : TEXTS) {
      int[] ids = lm.tokenizer().encode(t, true);
      out.add(TrainingExample.full(Arrays.copyOf(ids, promptTokens),
          Arrays.copyOfRange(ids, promptTokens, ids.length)));
    }
    return out;
  }

  static LoraConfig config(List<Integer> layers) {
    return new LoraConfig(4, 8, 0, EnumSet.of(Projection.Q_PROJ, Projection.V_PROJ,
        Projection.DOWN_PROJ), layers, false, "stories260K");
  }

  /** A fresh adapter whose B is random too, so it changes the model (a stand-in expert). */
  static LoraAdapter randomExpert(LanguageModel lm, List<Integer> layers, long seed,
      double scale) {
    LoraAdapter a = LoraAdapter.create(config(layers), lm.config(), lm.model().manager(), seed);
    SplittableRandom rng = new SplittableRandom(seed + 1);
    for (LoraAdapter.Pair p : a.pairs().values()) {
      float[] b = new float[(int) p.bT().getShape().size()];
      for (int i = 0; i < b.length; i++) {
        b[i] = (float) ((rng.nextDouble() * 2 - 1) * scale);
      }
      p.bT().set(b);
    }
    return a;
  }
}
