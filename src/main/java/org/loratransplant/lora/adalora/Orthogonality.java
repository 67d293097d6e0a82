package org.loratransplant.lora.adalora;

import ai.djl.ndarray.NDArray;
import java.util.List;

/**
 * AdaLoRA's orthogonality regulariser as PEFT computes it (and adds, times
 * {@code orth_reg_weight}, to the loss): for every right-singular matrix {@code Q = lora_A
 * (r, in)} the Frobenius norm {@code ||Q Q^T - I||_F}, for every left-singular matrix
 * {@code P = lora_B (out, r)} {@code ||P^T P - I||_F}, averaged over all these matrices. The
 * paper writes the squared norms summed; PEFT's (unsquared, averaged) is what a PEFT-trained
 * adapter saw, so we follow it.
 */
public final class Orthogonality {
  private Orthogonality() {}

  /**
   * The regulariser over modules given as our stored {@code aT (in, r)} and {@code bT (r, out)};
   * differentiable. Modules of rank 0 contribute {@code ||empty - empty||=0} and still count,
   * as in PEFT.
   */
  public static NDArray regulariser(List<NDArray> aTs, List<NDArray> bTs) {
    NDArray total = null;
    int n = 0;
    for (NDArray aT : aTs) { // Q Q^T = aT^T aT  (r, r)
      NDArray t = frobenius(aT.transpose().matMul(aT));
      total = total == null ? t : total.add(t);
      n++;
    }
    for (NDArray bT : bTs) { // P^T P = bT bT^T  (r, r)
      NDArray t = frobenius(bT.matMul(bT.transpose()));
      total = total == null ? t : total.add(t);
      n++;
    }
    if (total == null) {
      throw new IllegalArgumentException("no matrices to regularise");
    }
    return total.div((float) n);
  }

  private static NDArray frobenius(NDArray cov) {
    long r = cov.getShape().get(0);
    NDArray eye = cov.getManager().eye((int) r);
    // + 1e-12 under the root: the norm's gradient d/d x = x / ||x|| is 0/0 where a factor is
    // exactly orthonormal in float32 (training then went to NaN); the value moves by < 1e-6.
    return cov.sub(eye).square().sum().add(1e-12f).sqrt();
  }
}
