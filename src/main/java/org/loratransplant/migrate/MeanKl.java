package org.loratransplant.migrate;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import java.util.List;
import java.util.Set;
import org.loratransplant.model.Adapter;
import org.loratransplant.model.LlamaModel;
import org.loratransplant.train.objective.ModelOutputs;
import org.loratransplant.train.objective.TeacherKl;

/**
 * The mean per-token {@code KL(P_reference || P_other)} of two adapters on one model over
 * held-out sequences, at every position that predicts a next token: how far a migrated adapter
 * has moved from the expert's outputs (0 = the same distribution).
 */
public final class MeanKl {
  private MeanKl() {}

  public static double between(LlamaModel model, Adapter reference, Adapter other,
      List<int[]> sequences, int batchSize) {
    return between(model, reference, model, other, sequences, batchSize);
  }

  /**
   * {@code KL(P_referenceModel+reference || P_otherModel+other)} per token: two models sharing a
   * tokenizer (CA-LoRA: the uncompressed expert against the compressed base + adapter).
   */
  public static double between(LlamaModel referenceModel, Adapter reference, LlamaModel model,
      Adapter other, List<int[]> sequences, int batchSize) {
    double sum = 0;
    long n = 0;
    for (int s = 0; s < sequences.size(); s += batchSize) {
      List<int[]> batch = sequences.subList(s, Math.min(sequences.size(), s + batchSize));
      int len = batch.stream().mapToInt(a -> a.length).max().orElse(0);
      if (len < 2) {
        continue;
      }
      long[] ids = new long[batch.size() * len];
      for (int r = 0; r < batch.size(); r++) {
        for (int i = 0; i < batch.get(r).length; i++) {
          ids[r * len + i] = batch.get(r)[i];
        }
      }
      try (NDManager scope = model.manager().newSubManager()) {
        NDArray ref = ModelOutputs.run(referenceModel, reference, ids, batch.size(), len, scope,
            null,
            false, Set.of()).logits().logSoftmax(-1);
        NDArray oth = ModelOutputs.run(model, other, ids, batch.size(), len, scope, null, false,
            Set.of()).logits();
        float[] kl = TeacherKl.perTokenKl(ref, oth, 1).toFloatArray(); // (B, T)
        for (int r = 0; r < batch.size(); r++) {
          for (int p = 0; p + 1 < batch.get(r).length; p++) {
            sum += kl[r * len + p];
            n++;
          }
        }
      }
    }
    return n == 0 ? 0 : sum / n;
  }
}
