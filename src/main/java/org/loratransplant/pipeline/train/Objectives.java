package org.loratransplant.pipeline.train;

import org.loratransplant.model.LanguageModel;
import org.loratransplant.train.LoraTrainer;

/** The trainer for a {@link TrainSettings}' objective, with whatever teacher it holds open. */
final class Objectives {
  private Objectives() {}

  /** A trainer and the resources (a teacher model) to close after training. */
  interface Closeable extends AutoCloseable {
    LoraTrainer trainer();

    @Override
    void close();
  }

  static Closeable of(TrainSettings s, LanguageModel student) {
    if (s.objective().equals("kd")) {
      throw new UnsupportedOperationException("kd objective: not wired yet");
    }
    LoraTrainer t = new LoraTrainer(s.trainer());
    return new Closeable() {
      @Override
      public LoraTrainer trainer() {
        return t;
      }

      @Override
      public void close() {}
    };
  }
}
