package org.loratransplant.train.objective;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.ndarray.NDManager;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.testing.SharedData;
import org.loratransplant.train.TrainerConfig.LossNormaliser;
import org.loratransplant.train.TrainingExample;

/** Teacher stories260K (+ a random LoRA) for a babyllama-tok105 (character vocabulary) student. */
class CrossTokenizerTeacherTest {
  private static final String TEXT = "Lily liked the ball.";
  private static LanguageModel teacherLm;
  private static LanguageModel studentLm;
  private static LoraAdapter expert;

  @BeforeAll
  static void load() {
    teacherLm = LanguageModel.load(SharedData.model("stories260K"), Device.cpu());
    studentLm = LanguageModel.load(SharedData.model("babyllama-tok105"), Device.cpu());
    expert = Fixtures.randomExpert(teacherLm, List.of(), 11, 0.3);
  }

  @AfterAll
  static void close() {
    expert.close();
    teacherLm.close();
    studentLm.close();
  }

  @Test
  void positionsAlignWhereBothTokensEndAtTheSameCharacter() {
    CrossTokenizerTeacher t = new CrossTokenizerTeacher(teacherLm, expert, studentLm);
    int[] ids = studentLm.tokenizer().encode(TEXT, true);
    // <s> ▁ L i l y ▁ l i k e d ▁ t h e ▁ b a l l .   (decoded ends: 0 0 1 2 3 4 5 ...)
    assertEquals(22, ids.length);
    CrossTokenizerTeacher.RowAlignment a = t.align(ids);
    int[] teacherText = teacherLm.tokenizer().encode(TEXT, false);
    assertEquals(1, a.teacherIds()[0], "teacher BOS first");
    assertArrayEquals(teacherText, java.util.Arrays.copyOfRange(a.teacherIds(), 1,
        a.teacherIds().length));
    // Teacher: <s> ▁Lily(0-4) ▁li(4-7) ked(7-10) ...
    assertEquals("▁Lily", teacherLm.tokenizer().tokens(TEXT).tokens()[0]);
    int[] pos = a.teacherPositionOf();
    assertEquals(0, pos[0], "student BOS reads the teacher BOS");
    assertEquals(-1, pos[1], "the stripped leading '▁' adds no character: not a new position");
    assertEquals(-1, pos[2]);
    assertEquals(-1, pos[4]);
    assertEquals(1, pos[5], "'y' ends where '▁Lily' ends");
    assertEquals(-1, pos[6]);
    assertEquals(2, pos[8], "'i' of liked ends where '▁li' ends");
    assertEquals(3, pos[11], "'d' ends where 'ked' ends");
    assertEquals(-1, pos[21], "the last token predicts nothing");
  }

  @Test
  void carriedDistributionSumsTheTeachersProbabilitiesPerStudentToken() {
    CrossTokenizerTeacher t = new CrossTokenizerTeacher(teacherLm, expert, studentLm);
    int[] ids = studentLm.tokenizer().encode(TEXT, true);
    List<TrainingExample> rows = List.of(TrainingExample.full(new int[] {ids[0]},
        java.util.Arrays.copyOfRange(ids, 1, ids.length)));
    TokenBatch b = TokenBatch.of(rows, new int[] {0}, LossNormaliser.WEIGHT_SUM);
    int vs = studentLm.config().vocabSize();
    int vt = teacherLm.config().vocabSize();
    float[] lp;
    float[] valid;
    try (NDManager scope = studentLm.model().manager().newSubManager()) {
      Teacher.Distribution d = t.distribution(b, scope);
      lp = d.logprobs().toFloatArray();
      valid = d.valid();
    }
    assertEquals(1f, valid[5]);
    assertEquals(0f, valid[6]);
    // Independently: score every teacher token after "<s> ▁Lily" with the fused scorer and
    // add the probabilities up per mapped student token.
    int[] prefix = {1, teacherLm.tokenizer().encode("Lily", false)[0]};
    List<int[]> prompts = new ArrayList<>(Collections.nCopies(vt, prefix));
    List<int[]> responses = new ArrayList<>();
    for (int v = 0; v < vt; v++) {
      responses.add(new int[] {v});
    }
    List<float[]> scored = teacherLm.logprobs(prompts, responses, expert, 128);
    double[] want = new double[vs];
    for (int v = 0; v < vt; v++) {
      want[t.vocabularyMap().studentToken(v)] += Math.exp(scored.get(v)[0]);
    }
    double total = 0;
    for (int s = 0; s < vs; s++) {
      assertEquals(want[s], Math.exp(lp[5 * vs + s]), 1e-5, "student token " + s);
      total += Math.exp(lp[5 * vs + s]);
    }
    assertEquals(1, total, 1e-5);
    // Invalid positions carry a uniform (finite) row.
    assertEquals(-Math.log(vs), lp[6 * vs], 1e-6);
  }
}
