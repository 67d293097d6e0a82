package org.loratransplant.train.objective;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import java.util.Map;
import java.util.Set;
import org.loratransplant.model.Adapter;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.model.LlamaModel;

/**
 * A teacher with the student's tokenizer: a model (+ an adapter, e.g. the source expert's LoRA)
 * run on the student's own ids, no gradients, no dropout. Its vocabulary must be the student's.
 */
public final class ModelTeacher implements Teacher, HiddenStateMse.Source {
  private final LlamaModel model;
  private final Adapter adapter;

  public ModelTeacher(LlamaModel model, Adapter adapter) {
    this.model = java.util.Objects.requireNonNull(model, "model");
    this.adapter = adapter;
  }

  /** {@code lm} with {@code adapter} (null: the base model alone). */
  public static ModelTeacher of(LanguageModel lm, Adapter adapter) {
    return new ModelTeacher(lm.model(), adapter);
  }

  @Override
  public Distribution distribution(TokenBatch b, NDManager scope) {
    NDArray logits = ModelOutputs.run(model, adapter, b, scope, null, false, Set.of()).logits();
    float[] valid = new float[b.rows() * b.length()];
    for (int r = 0; r < b.rows(); r++) {
      for (int p = 0; p + 1 < b.lengths()[r]; p++) {
        valid[r * b.length() + p] = 1f;
      }
    }
    return new Distribution(logits.logSoftmax(-1), valid);
  }

  /** The outputs of teacher layers {@code layers} on the student's ids. */
  @Override
  public Map<Integer, NDArray> hiddenStates(TokenBatch b, Set<Integer> layers, NDManager scope) {
    return ModelOutputs.run(model, adapter, b, scope, null, false, layers).layers();
  }

  public LlamaModel model() {
    return model;
  }

  @Override
  public String description() {
    return model.directory() + " + " + describe(adapter);
  }

  static String describe(Adapter adapter) {
    if (adapter == null) {
      return "no adapter";
    }
    try {
      return adapter + " #" + Long.toHexString(adapter.weightsFingerprint());
    } catch (UnsupportedOperationException e) {
      return adapter.getClass().getName() + "@" + System.identityHashCode(adapter);
    }
  }
}
