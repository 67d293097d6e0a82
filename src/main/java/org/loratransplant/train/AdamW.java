package org.loratransplant.train;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import java.util.ArrayList;
import java.util.List;

/**
 * AdamW as PyTorch defines it (decoupled weight decay applied first:
 * {@code p *= 1 - lr * wd}, then the bias-corrected Adam step). Moments live beside the
 * parameters and can be saved and restored, so a resumed run continues exactly.
 */
public final class AdamW {
  static final double BETA1 = 0.9;
  static final double BETA2 = 0.999;
  static final double EPS = 1e-8;
  private final double weightDecay;
  private final List<NDArray> m = new ArrayList<>();
  private final List<NDArray> v = new ArrayList<>();
  private long step;

  public AdamW(List<NDArray> params, double weightDecay, NDManager manager) {
    this.weightDecay = weightDecay;
    for (NDArray p : params) {
      m.add(manager.zeros(p.getShape()));
      v.add(manager.zeros(p.getShape()));
    }
  }

  /**
   * One update of every parameter with its gradient (already clipped/scaled) at rate lr. Every
   * temporary is closed here: an intermediate NDArray lives in its input's manager (the
   * gradient's is the adapter's, which outlives training), so the unclosed temporaries of each
   * step piled up there (~9 parameter-sized arrays per parameter per step) and a long training
   * run grew by gigabytes.
   */
  public void step(List<NDArray> params, List<NDArray> grads, double lr) {
    step++;
    double bc1 = 1 - Math.pow(BETA1, step);
    double bc2 = 1 - Math.pow(BETA2, step);
    for (int i = 0; i < params.size(); i++) {
      NDArray p = params.get(i);
      NDArray g = grads.get(i);
      NDArray mi = m.get(i);
      NDArray vi = v.get(i);
      try (NDArray scaled = g.mul((float) (1 - BETA1))) {
        mi.muli((float) BETA1).addi(scaled);
      }
      try (NDArray sq = g.square()) {
        sq.muli((float) (1 - BETA2));
        vi.muli((float) BETA2).addi(sq);
      }
      if (weightDecay > 0) {
        p.muli((float) (1 - lr * weightDecay));
      }
      try (NDArray corrected = vi.div((float) bc2);
          NDArray root = corrected.sqrt();
          NDArray denom = root.add((float) EPS);
          NDArray ratio = mi.div(denom);
          NDArray update = ratio.mul((float) (lr / bc1))) {
        p.subi(update);
      }
    }
  }

  public long steps() {
    return step;
  }

  List<NDArray> firstMoments() {
    return m;
  }

  List<NDArray> secondMoments() {
    return v;
  }

  void restore(long steps, List<float[]> first, List<float[]> second) {
    this.step = steps;
    for (int i = 0; i < m.size(); i++) {
      m.get(i).set(first.get(i));
      v.get(i).set(second.get(i));
    }
  }
}
