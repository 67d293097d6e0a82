package org.loratransplant.pipeline.train;

import java.nio.file.Path;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.model.Devices;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.pipeline.ModelDirs;
import org.loratransplant.pipeline.align.AlignStage;
import org.loratransplant.train.LoraTrainer;
import org.loratransplant.train.objective.CrossTokenizerTeacher;
import org.loratransplant.train.objective.ModelTeacher;
import org.loratransplant.train.objective.Teacher;

/**
 * The trainer for a {@link TrainSettings}' objective, with whatever teacher it holds open: for
 * {@code kd} the source expert is loaded beside the target, and its next-token distribution is
 * carried to the target's vocabulary by MinED when the tokenizers differ.
 */
final class Objectives {
  private Objectives() {}

  /** A trainer and the resources (a teacher model) to close after training. */
  interface Closeable extends AutoCloseable {
    LoraTrainer trainer();

    @Override
    void close();
  }

  static Closeable of(TrainSettings s, LanguageModel student) {
    if (!s.objective().equals("kd")) {
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
    LanguageModel source = LanguageModel.load(ModelDirs.local(s.teacher().modelDir()),
        Devices.choose(s.device()));
    LoraAdapter expert = PeftFormat.read(ModelDirs.local(s.teacher().adapterDir()), source.config(),
        source.model().manager());
    boolean same = AlignStage.sameTokenizer(s.teacher().modelDir(), s.targetModel());
    Teacher teacher = same ? ModelTeacher.of(source, expert)
        : new CrossTokenizerTeacher(source, expert, student);
    LoraTrainer t = new LoraTrainer(s.trainer(), org.loratransplant.train.objective.Objectives
        .distillation(teacher, s.kdTemperature(), s.kdWeight()));
    return new Closeable() {
      @Override
      public LoraTrainer trainer() {
        return t;
      }

      @Override
      public void close() {
        expert.close();
        source.close();
      }
    };
  }
}
