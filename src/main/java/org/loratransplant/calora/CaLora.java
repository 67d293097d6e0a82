package org.loratransplant.calora;

import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.train.LoraTrainer;
import org.loratransplant.train.TrainingExample;
import org.loratransplant.train.objective.EveryPosition;
import org.loratransplant.train.objective.HiddenStateMse;
import org.loratransplant.train.objective.ModelTeacher;
import org.loratransplant.train.objective.Objective;
import org.loratransplant.train.objective.Objectives;

/**
 * CA-LoRA's training (METHODS.md section 4): (a) knowledge inheritance, the source LoRA read onto
 * the compressed base as the starting point; (b) recovery modules {@code sigma(x D) U} beside
 * every adapted projection, U zero so training starts from "inherited as-is"; (c) LoRA and
 * recovery trained together on the task cross-entropy, plus, when distilling, {@code alpha} x
 * the MSE between the compressed student's and the uncompressed teacher's (base + source LoRA)
 * layer outputs over every position of the text.
 */
public final class CaLora {
  private CaLora() {}

  /** A trained CA-LoRA adapter (the caller closes it) and its training. */
  public record Trained(CaLoraAdapter adapter, LoraTrainer.Result training, double seconds) {}

  /**
   * The objective: task CE alone when {@code teacher} is null, else CE + {@code alpha} x MSE of
   * the chosen layers' outputs against {@code teacher}.
   */
  public static Objective objective(ModelTeacher teacher, int numLayers, CaLoraSettings s) {
    if (teacher == null) {
      return Objectives.crossEntropy();
    }
    Set<Integer> layers = new TreeSet<>();
    if (s.allLayers()) {
      for (int l = 0; l < numLayers; l++) {
        layers.add(l);
      }
    } else {
      layers.add(numLayers - 1);
    }
    int[] ls = layers.stream().mapToInt(Integer::intValue).toArray();
    return Objectives.sum(Objectives.term(1, Objectives.crossEntropy()),
        Objectives.term(s.mseWeight(), new EveryPosition(HiddenStateMse.sameLayers(teacher, ls))));
  }

  /** Inherits {@code sourceAdapter} onto {@code compressed} and adds fresh recovery modules. */
  public static CaLoraAdapter inherit(LanguageModel compressed, Path sourceAdapter,
      CaLoraSettings s, long seed) {
    LoraAdapter lora = PeftFormat.read(sourceAdapter, compressed.config(),
        compressed.model().manager());
    try {
      return new CaLoraAdapter(lora, RecoveryModules.create(lora.pairs().keySet(),
          compressed.config(), s.recoveryRank(), s.activation(), compressed.model().manager(),
          seed));
    } catch (RuntimeException e) {
      lora.close();
      throw e;
    }
  }

  /**
   * Inherits, adds recovery and trains both on {@code data} with seed {@code seed};
   * {@code teacher} (the uncompressed base + source LoRA) null trains on CE only.
   */
  public static Trained train(LanguageModel compressed, Path sourceAdapter, ModelTeacher teacher,
      List<TrainingExample> data, CaLoraSettings s, long seed) {
    long t0 = System.nanoTime();
    CaLoraAdapter a = inherit(compressed, sourceAdapter, s, seed);
    try {
      LoraTrainer.Result r = new LoraTrainer(s.trainer(seed),
          objective(teacher, compressed.config().numLayers(), s))
          .train(compressed, a, a.parameters(), data);
      return new Trained(a, r, (System.nanoTime() - t0) / 1e9);
    } catch (RuntimeException e) {
      a.close();
      throw e;
    }
  }
}
