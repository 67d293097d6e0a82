package org.loratransplant.pipeline;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.List;

/**
 * One step of a recipe: it reads complete outputs of earlier stages and commits its own outputs
 * to {@link #store()} under {@link #outputs()}. It says <em>how</em>; whether it runs at all is
 * the {@link RecipeRunner}'s decision, from {@link #key()}.
 */
public interface Stage {
  /** Short name for logs and summaries, e.g. {@code generate}. */
  String name();

  /** What it reads: other stages' outputs (by store-relative path) and input files. */
  List<String> inputs();

  /** Where the outputs are committed. */
  StageStore store();

  /** The output names under the store; the stage is complete when all carry {@link #key()}. */
  List<String> outputs();

  /** Hash of everything the outputs depend on: canonical settings and the inputs' keys. */
  String key();

  /**
   * Does the work and commits every output (with {@link RecipeRunner#PENDING} as the marker: the
   * runner re-marks them with the key when the whole stage is done). Returns the stage's figures
   * (rows, tokens, losses...), stored beside its outputs and shown again when it is skipped.
   */
  ObjectNode run();

  /** Work a stage does, as a lambda. */
  interface Work {
    ObjectNode run();
  }

  /** A stage from its parts. */
  static Stage of(String name, List<String> inputs, StageStore store, List<String> outputs,
      String key, Work work) {
    return new Simple(name, List.copyOf(inputs), store, List.copyOf(outputs), key, work);
  }

  /** The plain implementation behind {@link #of}. */
  record Simple(String name, List<String> inputs, StageStore store, List<String> outputs,
      String key, Work work) implements Stage {
    @Override
    public ObjectNode run() {
      return work.run();
    }
  }
}
