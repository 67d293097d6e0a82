package org.loratransplant.train.objective;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.Shape;

/**
 * The masked, weighted causal-LM loss, the trainer's default: {@code sum_i w_i * CE(y_i) / N}
 * over response tokens, N the weight sum or the response-token count
 * ({@link TokenBatch#normaliser}). A batch whose weights are all zero has loss 0 and zero
 * gradient. Only the weighted positions go through the LM head and its softmax, a chunk of them
 * at a time with the gradient computed alongside ({@link ModelOutputs#weightedNll}), so the
 * {@code (B, T, V)} logits are never held.
 */
public final class MaskedCrossEntropy implements Objective {
  public static final MaskedCrossEntropy INSTANCE = new MaskedCrossEntropy();

  private MaskedCrossEntropy() {}

  @Override
  public NDArray loss(ModelOutputs student, TokenBatch b, TeacherOutputs teacher) {
    int rows = b.rows();
    int t = b.length();
    float[] w = b.weights();
    int counted = 0;
    for (float x : w) {
      counted += x != 0 ? 1 : 0;
    }
    if (counted > 0) {
      // Only the weighted positions through the LM head, in chunks (ModelOutputs#weightedNll):
      // a prompt's positions carry no loss. An all-zero batch keeps the full form below, whose
      // loss is a 0 with a gradient graph.
      long[] at = new long[counted];
      long[] targets = new long[counted];
      float[] weights = new float[counted];
      for (int i = 0, k = 0; i < w.length; i++) {
        if (w[i] != 0) {
          at[k] = i;
          targets[k] = b.targets()[i];
          weights[k++] = w[i];
        }
      }
      double d = b.denominator(null);
      return student.weightedNll(at, targets, weights, d > 0 ? d : 1);
    }
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
