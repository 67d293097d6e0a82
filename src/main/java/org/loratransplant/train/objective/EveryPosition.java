package org.loratransplant.train.objective;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import java.util.Set;

/**
 * Runs an objective with every real position of the batch weighted 1 (prompt and response alike,
 * normalised by their count): hidden-state and logit matching should cover the whole text the
 * teacher sees, while the task cross-entropy in the same sum keeps its response-only weights
 * (layer-wise migration, CA-LoRA's distillation).
 */
public final class EveryPosition implements Objective {
  private final Objective inner;

  public EveryPosition(Objective inner) {
    this.inner = inner;
  }

  static TokenBatch everyPosition(TokenBatch b) {
    float[] w = new float[b.rows() * b.length()];
    for (int r = 0; r < b.rows(); r++) {
      for (int p = 0; p < b.lengths()[r]; p++) {
        w[r * b.length() + p] = 1f;
      }
    }
    return new TokenBatch(b.rows(), b.length(), b.ids(), b.targets(), w, w, b.lengths(),
        b.normaliser());
  }

  @Override
  public NDArray loss(ModelOutputs student, TokenBatch batch, TeacherOutputs teacher) {
    return inner.loss(student, everyPosition(batch), teacher);
  }

  @Override
  public TeacherOutputs teach(TokenBatch batch, NDManager scope) {
    return inner.teach(everyPosition(batch), scope);
  }

  @Override
  public Set<Integer> studentLayers() {
    return inner.studentLayers();
  }

  @Override
  public String description() {
    return "every-position(" + inner.description() + ")";
  }
}
