package org.loratransplant.train.objective;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.loratransplant.train.TrainerConfig.LossNormaliser;

/** Hidden-state MSE on hand-made tensors against a hand computation. */
class HiddenStateMseTest {

  @Test
  void matchesTheHandComputation() {
    try (NDManager m = NDManager.newBaseManager(Device.cpu())) {
      // B = 1, T = 2, E = 2; student layer 1 vs teacher layer 3, student layer 0 vs teacher 0.
      NDArray s1 = m.create(new float[] {1, 2, 3, 4}, new Shape(1, 2, 2));
      NDArray t3 = m.create(new float[] {0, 2, 3, 1}, new Shape(1, 2, 2));
      NDArray s0 = m.create(new float[] {0, 0, 1, 1}, new Shape(1, 2, 2));
      NDArray t0 = m.create(new float[] {2, 0, 1, 1}, new Shape(1, 2, 2));
      float[] w = {0.5f, 1f};
      TokenBatch b = new TokenBatch(1, 2, new long[2], new long[2], w, new float[] {1, 1},
          new int[] {2}, LossNormaliser.WEIGHT_SUM);
      HiddenStateMse mse = new HiddenStateMse(new HiddenStateMse.Source() {
        @Override
        public Map<Integer, NDArray> hiddenStates(TokenBatch batch, java.util.Set<Integer> l,
            NDManager scope) {
          throw new AssertionError("not called by loss()");
        }

        @Override
        public String description() {
          return "hand-made";
        }
      }, Map.of(1, 3, 0, 0));
      assertEquals(java.util.Set.of(0, 1), mse.studentLayers());
      ModelOutputs student = new ModelOutputs(m.zeros(new Shape(1, 2, 5)), Map.of(1, s1, 0, s0),
          m);
      TeacherOutputs teacher = TeacherOutputs.ofHidden(Map.of(3, t3, 0, t0));
      // pair (1,3): position 0: ((1-0)^2 + 0)/2 = 0.5; position 1: (0 + 9)/2 = 4.5
      // pair (0,0): position 0: (4 + 0)/2 = 2;        position 1: 0
      double pair13 = (0.5 * 0.5 + 1 * 4.5) / 1.5;
      double pair00 = (0.5 * 2 + 1 * 0) / 1.5;
      assertEquals((pair13 + pair00) / 2, mse.loss(student, b, teacher).getFloat(), 1e-6);
      TokenBatch perToken = new TokenBatch(1, 2, new long[2], new long[2], w, new float[] {1, 1},
          new int[] {2}, LossNormaliser.RESPONSE_TOKENS);
      assertEquals((pair13 + pair00) / 2 * 1.5 / 2, mse.loss(student, perToken, teacher)
          .getFloat(), 1e-6);
      assertTrue(mse.description().contains("{0=0, 1=3}"), mse.description());
    }
  }
}
