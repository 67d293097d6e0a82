package org.loratransplant.train.objective;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.loratransplant.train.TrainerConfig.LossNormaliser;

/** KL distillation on hand-made distributions, checked against values computed by hand. */
class TeacherKlTest {
  private NDManager m;

  @BeforeEach
  void open() {
    m = NDManager.newBaseManager(Device.cpu());
  }

  @AfterEach
  void close() {
    m.close();
  }

  /** A teacher answering a fixed distribution, whatever the batch. */
  private static Teacher fixed(NDArray logprobs, float[] valid) {
    return new Teacher() {
      @Override
      public Distribution distribution(TokenBatch batch, NDManager scope) {
        return new Distribution(logprobs, valid);
      }

      @Override
      public String description() {
        return "fixed";
      }
    };
  }

  /** One row of {@code t} positions, weights as given, targets irrelevant to KL. */
  private static TokenBatch batch(float[] weights, LossNormaliser n) {
    int t = weights.length;
    float[] response = new float[t];
    for (int i = 0; i < t; i++) {
      response[i] = weights[i] > 0 ? 1 : 0;
    }
    return new TokenBatch(1, t, new long[t], new long[t], weights, response, new int[] {t}, n);
  }

  private float kl(NDArray teacherLogp, float[] valid, NDArray studentLogits, TokenBatch b,
      double temperature) {
    TeacherKl kl = new TeacherKl(fixed(teacherLogp, valid), temperature);
    TeacherOutputs t = kl.teach(b, m);
    return kl.loss(new ModelOutputs(studentLogits, Map.of(), m), b, t).getFloat();
  }

  private NDArray logOf(float[] probs, long... shape) {
    return m.create(probs, new Shape(shape)).log();
  }

  @Test
  void twoPointDistributionsMatchTheHandValue() {
    // p = teacher [0.5, 0.5], q = student [0.9, 0.1]
    double want = 0.5 * Math.log(0.5 / 0.9) + 0.5 * Math.log(0.5 / 0.1);
    NDArray p = logOf(new float[] {0.5f, 0.5f}, 1, 1, 2);
    NDArray q = logOf(new float[] {0.9f, 0.1f}, 1, 1, 2); // log-probs are valid logits
    TokenBatch b = batch(new float[] {1}, LossNormaliser.WEIGHT_SUM);
    assertEquals(want, kl(p, new float[] {1}, q, b, 1), 1e-6);
    // Logits shifted by a constant are the same student distribution.
    assertEquals(want, kl(p, new float[] {1}, q.add(3f), b, 1), 1e-5);
  }

  @Test
  void temperatureSoftensBothSidesAndScalesByItsSquare() {
    double tmp = 2;
    double[] p = {0.7, 0.2, 0.1};
    double[] q = {0.3, 0.3, 0.4};
    // softmax(log p / T) = p^(1/T) normalised
    double[] pt = power(p, 1 / tmp);
    double[] qt = power(q, 1 / tmp);
    double want = 0;
    for (int i = 0; i < 3; i++) {
      want += pt[i] * Math.log(pt[i] / qt[i]);
    }
    want *= tmp * tmp;
    TokenBatch b = batch(new float[] {1}, LossNormaliser.WEIGHT_SUM);
    float got = kl(logOf(new float[] {0.7f, 0.2f, 0.1f}, 1, 1, 3), new float[] {1},
        logOf(new float[] {0.3f, 0.3f, 0.4f}, 1, 1, 3), b, tmp);
    assertEquals(want, got, 1e-6);
  }

  private static double[] power(double[] p, double e) {
    double[] out = new double[p.length];
    double s = 0;
    for (int i = 0; i < p.length; i++) {
      out[i] = Math.pow(p[i], e);
      s += out[i];
    }
    for (int i = 0; i < p.length; i++) {
      out[i] /= s;
    }
    return out;
  }

  @Test
  void zeroWhenTheStudentIsTheTeacher() {
    float[] logits = {1.5f, -0.3f, 0.2f, 2f, 0f, -1f};
    NDArray s = m.create(logits, new Shape(1, 2, 3));
    NDArray t = s.logSoftmax(-1);
    TokenBatch b = batch(new float[] {1, 0.5f}, LossNormaliser.WEIGHT_SUM);
    assertEquals(0, kl(t, new float[] {1, 1}, s, b, 1), 1e-6);
    assertEquals(0, kl(t, new float[] {1, 1}, s, b, 3), 1e-6);
  }

  @Test
  void weightsValidityAndNormalisersSelectPositions() {
    // Position 0: KL a; position 1: KL c; position 2 is not covered by the teacher.
    NDArray t = logOf(new float[] {0.5f, 0.5f, 0.2f, 0.8f, 0.5f, 0.5f}, 1, 3, 2);
    NDArray s = logOf(new float[] {0.9f, 0.1f, 0.6f, 0.4f, 0.01f, 0.99f}, 1, 3, 2);
    double a = 0.5 * Math.log(0.5 / 0.9) + 0.5 * Math.log(0.5 / 0.1);
    double c = 0.2 * Math.log(0.2 / 0.6) + 0.8 * Math.log(0.8 / 0.4);
    float[] valid = {1, 1, 0};
    float[] w = {1, 0.5f, 1};
    assertEquals((a + 0.5 * c) / 1.5, kl(t, valid, s, batch(w, LossNormaliser.WEIGHT_SUM), 1),
        1e-6, "weighted mean over covered positions");
    assertEquals((a + 0.5 * c) / 2, kl(t, valid, s, batch(w, LossNormaliser.RESPONSE_TOKENS), 1),
        1e-6, "divided by the covered response tokens");
    assertEquals(0, kl(t, new float[3], s, batch(w, LossNormaliser.WEIGHT_SUM), 1), 0,
        "nothing covered: 0");
  }

  @Test
  void gradientDescentMovesTheStudentTowardsTheTeacher() {
    NDArray teacher = logOf(new float[] {0.6f, 0.3f, 0.1f, 0.05f, 0.05f, 0.9f}, 1, 2, 3);
    NDArray logits = m.create(new float[] {2f, 0f, -1f, 0f, 1f, 0f}, new Shape(1, 2, 3));
    logits.setRequiresGradient(true);
    TokenBatch b = batch(new float[] {1, 1}, LossNormaliser.WEIGHT_SUM);
    TeacherKl kl = new TeacherKl(fixed(teacher, new float[] {1, 1}), 1);
    double first = 0;
    double last = 0;
    for (int step = 0; step < 20; step++) {
      float value;
      try (NDManager s = m.newSubManager();
          GradientCollector gc = Engine.getInstance().newGradientCollector()) {
        NDArray loss = kl.loss(new ModelOutputs(logits, Map.of(), s), b, kl.teach(b, s));
        gc.backward(loss);
        value = loss.getFloat();
      }
      if (step == 0) {
        first = value;
      }
      last = value;
      NDArray g = logits.getGradient();
      logits.subi(g.mul(1f)); // plain gradient descent, rate 1
      g.subi(g);
    }
    assertTrue(first > 0.5, "the start is far from the teacher: " + first);
    assertTrue(last < first / 10, "KL fell from " + first + " to " + last);
  }

  @Test
  void refusesABadTemperatureAndMismatchedVocabularies() {
    Teacher t = fixed(m.zeros(new Shape(1, 1, 3)), new float[] {1});
    assertThrows(IllegalArgumentException.class, () -> new TeacherKl(t, 0));
    TokenBatch b = batch(new float[] {1}, LossNormaliser.WEIGHT_SUM);
    TeacherKl kl = new TeacherKl(t, 1);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> kl.loss(new ModelOutputs(m.zeros(new Shape(1, 1, 4)), Map.of(), m), b,
            kl.teach(b, m)));
    assertTrue(e.getMessage().contains("vocabulary 4"), e.getMessage());
  }
}
