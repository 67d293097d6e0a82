package org.loratransplant.train.objective;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.model.LlamaModel;
import org.loratransplant.testing.SharedData;
import org.loratransplant.train.TrainerConfig.LossNormaliser;
import org.loratransplant.train.TrainingExample;

/** The same-tokenizer teacher and the per-layer hidden states on stories260K. */
class ModelTeacherTest {
  private static LanguageModel lm;
  private static List<TrainingExample> data;

  @BeforeAll
  static void load() {
    lm = LanguageModel.load(SharedData.model("stories260K"), Device.cpu());
    data = Fixtures.examples(lm, 2);
  }

  @AfterAll
  static void close() {
    lm.close();
  }

  @Test
  void logprobsEqualTheScorersOnTheExpert() {
    try (LoraAdapter expert = Fixtures.randomExpert(lm, List.of(), 5, 0.3);
        NDManager scope = lm.model().manager().newSubManager()) {
      TokenBatch b = TokenBatch.of(data, new int[] {2, 0, 1}, LossNormaliser.WEIGHT_SUM);
      Teacher.Distribution d = ModelTeacher.of(lm, expert).distribution(b, scope);
      float[] lp = d.logprobs().toFloatArray();
      int v = lm.config().vocabSize();
      List<int[]> prompts = new ArrayList<>();
      List<int[]> responses = new ArrayList<>();
      for (int r : new int[] {2, 0, 1}) {
        prompts.add(data.get(r).prompt());
        responses.add(data.get(r).response());
      }
      List<float[]> want = lm.logprobs(prompts, responses, expert, 3);
      List<float[]> base = lm.logprobs(prompts, responses, null, 3);
      assertFalse(Arrays.equals(want.get(0), base.get(0)), "the expert differs from the base");
      for (int r = 0; r < 3; r++) {
        int p = prompts.get(r).length;
        for (int i = 0; i < responses.get(r).length; i++) {
          int pos = r * b.length() + p - 1 + i;
          assertEquals(want.get(r)[i], lp[pos * v + responses.get(r)[i]], 1e-4,
              "row " + r + " token " + i);
        }
        for (int pos = 0; pos < b.length(); pos++) {
          assertEquals(pos + 1 < b.lengths()[r] ? 1f : 0f, d.valid()[r * b.length() + pos],
              "row " + r + " position " + pos + " is valid iff it has a next token");
        }
      }
    }
  }

  @Test
  void hiddenStatesKeepTheFinalOutputAndLowerLayersIgnoreHigherAdapters() {
    LlamaModel m = lm.model();
    int t = data.get(0).length();
    long[] ids = new long[t];
    for (int i = 0; i < t; i++) {
      ids[i] = i < data.get(0).prompt().length ? data.get(0).prompt()[i]
          : data.get(0).response()[i - data.get(0).prompt().length];
    }
    try (LoraAdapter upper = Fixtures.randomExpert(lm, List.of(3, 4), 9, 0.3);
        NDManager scope = m.manager().newSubManager()) {
      ModelOutputs plain = ModelOutputs.run(m, upper, ids, 1, t, scope, null, false, Set.of());
      ModelOutputs withLayers = ModelOutputs.run(m, upper, ids, 1, t, scope, null, false,
          Set.of(1, 2, 3));
      assertArrayEquals(plain.logits().toFloatArray(), withLayers.logits().toFloatArray(),
          "asking for layers leaves the output unchanged");
      assertEquals(Set.of(1, 2, 3), withLayers.layers().keySet());
      assertEquals(new Shape(1, t, lm.config().hiddenSize()), withLayers.layer(2).getShape());
      ModelOutputs base = ModelOutputs.run(m, null, ids, 1, t, scope, null, false,
          Set.of(1, 2, 3));
      // An adapter on layers 3-4 cannot change what layers 0-2 output, but changes layer 3's.
      assertArrayEquals(base.layer(2).toFloatArray(), withLayers.layer(2).toFloatArray(), 1e-6f);
      float diff = base.layer(3).sub(withLayers.layer(3)).abs().max().getFloat();
      assertFalse(diff < 1e-3, "layer 3 output moved by " + diff);
      // The same teacher as a hidden-state source gives the same arrays.
      TokenBatch b = TokenBatch.of(data, new int[] {0}, LossNormaliser.WEIGHT_SUM);
      Map<Integer, NDArray> h = ModelTeacher.of(lm, upper).hiddenStates(b, Set.of(3), scope);
      assertArrayEquals(withLayers.layer(3).toFloatArray(), h.get(3).toFloatArray(), 1e-6f);
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> ModelOutputs.run(m, null, ids, 1, t, scope, null, false, Set.of(5)));
      assertEquals("layer 5 does not exist: the model has 5 layers (0..4)", e.getMessage());
    }
  }

  @Test
  void hiddenMseIsZeroAgainstItselfAndPositiveAgainstAnExpert() {
    try (LoraAdapter expert = Fixtures.randomExpert(lm, List.of(2), 4, 0.3);
        NDManager scope = lm.model().manager().newSubManager()) {
      TokenBatch b = TokenBatch.of(data, new int[] {0, 1}, LossNormaliser.WEIGHT_SUM);
      HiddenStateMse self = HiddenStateMse.sameLayers(ModelTeacher.of(lm, null), 2, 4);
      HiddenStateMse fromExpert = HiddenStateMse.sameLayers(ModelTeacher.of(lm, expert), 2, 4);
      ModelOutputs student = ModelOutputs.run(lm.model(), null, b, scope, null, false,
          self.studentLayers());
      assertEquals(0, self.loss(student, b, self.teach(b, scope)).getFloat(), 0);
      float d = fromExpert.loss(student, b, fromExpert.teach(b, scope)).getFloat();
      assertFalse(d < 1e-4, "an expert on layer 2 moves layers 2 and 4: " + d);
    }
  }
}
