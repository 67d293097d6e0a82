package org.loratransplant.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.training.GradientCollector;
import java.util.function.Function;
import org.junit.jupiter.api.Test;

/**
 * The TorchScript ops of the differentiable forward against the same formulas written with DJL
 * ops (sigmoid-built SiLU, a rotation matrix for RoPE's rotate-half, a division by a square
 * root): values and, through autograd, the gradients of every input that needs one.
 */
class TrainingOpsTest {
  private static final float TOL = 2e-5f;

  @Test
  void rmsNormMatchesTheFormula() {
    try (NDManager m = NDManager.newBaseManager()) {
      NDArray x = m.randomNormal(new Shape(2, 3, 8));
      NDArray w = m.randomNormal(new Shape(8));
      NDArray eps = m.create(1e-5f);
      NDArray mean = m.ones(new Shape(8, 1)).div(8);
      check(x, in -> TrainingOps.rmsNorm(in, w, eps, mean),
          in -> in.div(in.square().mean(new int[] {-1}, true).add(1e-5f).sqrt()).mul(w));
    }
  }

  @Test
  void swiGluMatchesTwoProductsAndSigmoid() {
    try (NDManager m = NDManager.newBaseManager()) {
      NDArray x = m.randomNormal(new Shape(2, 5, 6));
      NDArray gateUp = m.randomNormal(new Shape(14, 6)); // inter 7: gate rows 0-6, up 7-13
      NDArray gate = gateUp.get("0:7");
      NDArray up = gateUp.get("7:14");
      check(x, in -> TrainingOps.swiGlu(in, gateUp), in -> {
        NDArray g = in.matMul(gate.transpose());
        return g.mul(Activation.sigmoid(g)).mul(in.matMul(up.transpose()));
      });
    }
  }

  @Test
  void siluMulMatchesSigmoidForBothInputs() {
    try (NDManager m = NDManager.newBaseManager()) {
      NDArray g = m.randomNormal(new Shape(4, 9)).mul(3);
      NDArray u = m.randomNormal(new Shape(4, 9));
      check(g, in -> TrainingOps.siluMul(in, u), in -> in.mul(Activation.sigmoid(in)).mul(u));
      check(u, in -> TrainingOps.siluMul(g, in), in -> g.mul(Activation.sigmoid(g)).mul(in));
    }
  }

  @Test
  void ropeMatchesRotateHalfAsAMatrix() {
    try (NDManager m = NDManager.newBaseManager()) {
      int d = 8;
      NDArray x = m.randomNormal(new Shape(2, 3, 4, d)); // (B, T, heads, D)
      NDArray cos = m.randomUniform(-1, 1, new Shape(2, 3, 1, d));
      NDArray sin = m.randomUniform(-1, 1, new Shape(2, 3, 1, d));
      // the sin table with its first half negated, as LlamaModel stores it for this op
      NDArray sign = m.create(new float[] {-1, -1, -1, -1, 1, 1, 1, 1});
      float[] r = new float[d * d];
      for (int j = 0; j < d / 2; j++) {
        r[(j + d / 2) * d + j] = -1f; // out[j] = -x[j + D/2]
        r[j * d + j + d / 2] = 1f; // out[j + D/2] = x[j]
      }
      NDArray rotate = m.create(r, new Shape(d, d));
      check(x, in -> TrainingOps.rope(in, cos, sin.mul(sign)),
          in -> in.mul(cos).add(in.matMul(rotate).mul(sin)));
    }
  }

  /** op(x) equals reference(x), and so does the gradient of sum(op(x) * probe) w.r.t. x. */
  private static void check(NDArray x, Function<NDArray, NDArray> op,
      Function<NDArray, NDArray> reference) {
    float[][] values = new float[2][];
    float[][] grads = new float[2][];
    NDArray probe = null;
    for (int k = 0; k < 2; k++) {
      NDArray in = x.duplicate();
      in.setRequiresGradient(true);
      try (GradientCollector gc = Engine.getInstance().newGradientCollector()) {
        NDArray y = (k == 0 ? op : reference).apply(in);
        if (probe == null) {
          probe = x.getManager().randomNormal(y.getShape());
        }
        values[k] = y.toFloatArray();
        gc.backward(y.mul(probe).sum());
      }
      assertNotNull(in.getGradient());
      grads[k] = in.getGradient().toFloatArray();
    }
    assertEquals(values[1].length, values[0].length);
    assertArrayEquals(values[1], values[0], TOL, "values");
    assertArrayEquals(grads[1], grads[0], TOL, "gradients");
  }
}
