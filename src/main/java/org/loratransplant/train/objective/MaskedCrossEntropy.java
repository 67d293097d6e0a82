package org.loratransplant.train.objective;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.Shape;

/**
 * The masked, weighted causal-LM loss, the trainer's default: {@code sum_i w_i * CE(y_i) / N}
 * over response tokens, N the weight sum or the response-token count
 * ({@link TokenBatch#normaliser}). A batch whose weights are all zero has loss 0 and zero
 * gradient. The ops are the trainer's original ones, so its losses are unchanged bit for bit.
 */
public final class MaskedCrossEntropy implements Objective {
  public static final MaskedCrossEntropy INSTANCE = new MaskedCrossEntropy();

  private MaskedCrossEntropy() {}

  @Override
  public NDArray loss(ModelOutputs student, TokenBatch b, TeacherOutputs teacher) {
    int rows = b.rows();
    int t = b.length();
    NDArray logp = student.logits().logSoftmax(-1)
        .gather(student.scope().create(b.targets(), new Shape(rows, t, 1)), -1); // (B, T, 1)
    NDArray weighted = logp.reshape(rows, t)
        .mul(student.scope().create(b.weights(), new Shape(rows, t))).sum();
    double n = b.denominator(null);
    return weighted.neg().div((float) (n > 0 ? n : 1));
  }

  @Override
  public String description() {
    return "ce";
  }
}
