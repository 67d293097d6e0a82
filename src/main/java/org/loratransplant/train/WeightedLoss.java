package org.loratransplant.train;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import java.util.Set;
import org.loratransplant.model.Adapter;
import org.loratransplant.model.LlamaModel;
import org.loratransplant.train.objective.MaskedCrossEntropy;
import org.loratransplant.train.objective.ModelOutputs;
import org.loratransplant.train.objective.TeacherOutputs;

/**
 * The masked, weighted causal-LM loss ({@link MaskedCrossEntropy}) of one batch, forward pass
 * included: {@code sum_i w_i * CE(y_i) / N} over response tokens, with N from
 * {@link TrainerConfig.LossNormaliser}.
 */
final class WeightedLoss {
  private WeightedLoss() {}

  static NDArray compute(LlamaModel model, Adapter adapter, Batch b, NDManager scope,
      NDArray embeddingNoise, boolean training) {
    ModelOutputs out = ModelOutputs.run(model, adapter, b.tokens(), scope, embeddingNoise,
        training, Set.of());
    return MaskedCrossEntropy.INSTANCE.loss(out, b.tokens(), TeacherOutputs.none());
  }
}
