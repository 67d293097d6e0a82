package org.loratransplant.train.objective;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;

/**
 * A model whose next-token distribution a student is distilled towards. It answers for the
 * student's batch, over the student's vocabulary, at the student's positions.
 */
public interface Teacher {

  /** Stand-in log-probability of a token the teacher gives probability 0 (finite, so 0 * log p
   *  stays 0 in a KL sum). */
  float LOG_ZERO = -1e4f;

  /**
   * The teacher's next-token log-probs for every student position, computed without gradients
   * in {@code scope}.
   */
  Distribution distribution(TokenBatch batch, NDManager scope);

  /** Names the model, its adapter weights and any vocabulary mapping (for fingerprints). */
  String description();

  /**
   * @param logprobs {@code (B, T, V_student)} finite log-probs, each valid row a normalised
   *     distribution (impossible tokens at {@link #LOG_ZERO}); rows of invalid positions are
   *     uniform
   * @param valid {@code B * T} values, 1 where the teacher predicts the same next token position
   *     as the student, else 0
   */
  record Distribution(NDArray logprobs, float[] valid) {}
}
