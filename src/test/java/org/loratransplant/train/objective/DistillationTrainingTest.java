package org.loratransplant.train.objective;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.ndarray.NDManager;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.testing.SharedData;
import org.loratransplant.train.LoraTrainer;
import org.loratransplant.train.TrainerConfig;
import org.loratransplant.train.TrainerConfig.LossNormaliser;
import org.loratransplant.train.TrainingExample;

/** The trainer with objectives: KD on one tokenizer and across two. */
class DistillationTrainingTest {
  private static LanguageModel stories;
  private static LanguageModel baby;
  private static List<TrainingExample> data;

  @BeforeAll
  static void load() {
    stories = LanguageModel.load(SharedData.model("stories260K"), Device.cpu());
    baby = LanguageModel.load(SharedData.model("babyllama-tok105"), Device.cpu());
    data = Fixtures.examples(stories, 3);
  }

  @AfterAll
  static void close() {
    stories.close();
    baby.close();
  }

  private static TrainerConfig cfg(int epochs, int checkpointEvery) {
    return new TrainerConfig(1e-2, epochs, 2, 0.0, 0.0, 1.0, 1, 42, 0,
        LossNormaliser.WEIGHT_SUM, checkpointEvery, 0);
  }

  /** The objective's value on every example, the student adapter on, no dropout. */
  private static double evaluate(LanguageModel student, LoraAdapter adapter, Objective o,
      List<TrainingExample> rows) {
    int[] all = new int[rows.size()];
    for (int i = 0; i < all.length; i++) {
      all[i] = i;
    }
    TokenBatch b = TokenBatch.of(rows, all, LossNormaliser.WEIGHT_SUM);
    try (NDManager scope = student.model().manager().newSubManager()) {
      ModelOutputs out = ModelOutputs.run(student.model(), adapter, b, scope, null, false,
          o.studentLayers());
      return o.loss(out, b, o.teach(b, scope)).getFloat();
    }
  }

  @Test
  void theDefaultObjectiveThroughTheNewConstructorTrainsIdentically() {
    List<Double> a;
    List<Double> b;
    try (LoraAdapter x = LoraAdapter.create(Fixtures.config(List.of()), stories.config(),
        stories.model().manager(), 3)) {
      a = new LoraTrainer(cfg(1, 0)).train(stories, x, data, null).losses();
    }
    try (LoraAdapter x = LoraAdapter.create(Fixtures.config(List.of()), stories.config(),
        stories.model().manager(), 3)) {
      b = new LoraTrainer(cfg(1, 0), Objectives.crossEntropy()).train(stories, x, data, null)
          .losses();
    }
    assertEquals(a, b);
  }

  @Test
  void sameTokenizerKdLowersTheKlToTheExpert(@TempDir Path tmp) {
    try (LoraAdapter expert = Fixtures.randomExpert(stories, List.of(), 21, 0.5);
        LoraAdapter student = LoraAdapter.create(Fixtures.config(List.of()), stories.config(),
            stories.model().manager(), 8)) {
      Teacher teacher = ModelTeacher.of(stories, expert);
      TeacherKl kl = new TeacherKl(teacher, 2.0);
      double before = evaluate(stories, student, kl, data);
      assertTrue(before > 0.05, "the expert differs from the base: KL " + before);
      Objective kd = Objectives.distillation(teacher, 2.0, 1.0);
      LoraTrainer.Result r = new LoraTrainer(cfg(4, 0), kd).train(stories, student, data, null);
      double after = evaluate(stories, student, kl, data);
      assertTrue(after < 0.7 * before, "KL " + before + " -> " + after + ", losses "
          + r.losses());
      // A checkpoint written under plain cross-entropy is not resumed under KD.
      Path ckpt = tmp.resolve("ckpt");
      try (LoraAdapter other = LoraAdapter.create(Fixtures.config(List.of()), stories.config(),
          stories.model().manager(), 8)) {
        new LoraTrainer(cfg(2, 1)).train(stories, other, data, ckpt);
        IllegalStateException e = assertThrows(IllegalStateException.class,
            () -> new LoraTrainer(cfg(2, 1), kd).train(stories, other, data, ckpt));
        assertTrue(e.getMessage().contains("other data or settings"), e.getMessage());
      }
    }
  }

  @Test
  void crossTokenizerKdLowersTheKlOnACharacterStudent() {
    List<TrainingExample> charData = Fixtures.examples(baby, 4);
    try (LoraAdapter expert = Fixtures.randomExpert(stories, List.of(), 31, 0.5);
        LoraAdapter student = LoraAdapter.create(Fixtures.config(List.of()), baby.config(),
            baby.model().manager(), 9)) {
      CrossTokenizerTeacher teacher = new CrossTokenizerTeacher(stories, expert, baby);
      TeacherKl kl = new TeacherKl(teacher, 1.0);
      double before = evaluate(baby, student, kl, charData);
      Objective kd = Objectives.distillation(teacher, 1.0, 1.0);
      List<Double> losses = new LoraTrainer(cfg(3, 0), kd).train(baby, student, charData, null)
          .losses();
      double after = evaluate(baby, student, kl, charData);
      assertTrue(losses.stream().allMatch(Double::isFinite), losses.toString());
      assertTrue(after < 0.7 * before, "KL " + before + " -> " + after);
    }
  }
}
