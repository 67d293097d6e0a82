package org.loratransplant.train;

import java.util.List;
import org.loratransplant.train.objective.TokenBatch;

/**
 * The trainer's view of a micro-batch: the objectives' {@link TokenBatch} plus the loss
 * normaliser as the masked cross-entropy uses it (weight sum or response-token count).
 */
record Batch(TokenBatch tokens, double normaliser) {

  static Batch of(List<TrainingExample> data, int[] indices,
      TrainerConfig.LossNormaliser normaliser) {
    TokenBatch t = TokenBatch.of(data, indices, normaliser);
    return new Batch(t, t.denominator(null));
  }

  int rows() {
    return tokens.rows();
  }

  int length() {
    return tokens.length();
  }
}
