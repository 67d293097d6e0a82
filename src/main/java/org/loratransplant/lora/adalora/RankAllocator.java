package org.loratransplant.lora.adalora;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * AdaLoRA's importance scores and pruning, as PEFT's {@code RankAllocator} computes them. Per
 * parameter entry: sensitivity {@code I = |w * grad|}, smoothed {@code Ibar <- beta1 Ibar + (1 -
 * beta1) I}, uncertainty {@code U <- beta2 U + (1 - beta2) |I - Ibar|}, score {@code Ibar * U}.
 * A triplet's importance is its lambda's score plus the mean score of its row of {@code A} and
 * the mean score of its column of {@code B}. Masking to a budget zeroes the lambda of every
 * triplet whose importance is at most the {@code (total - budget)}-th smallest (ties go too, as
 * in PEFT).
 *
 * <p>Plain Java arrays in PEFT's orientation ({@code A (r, in)}, {@code B (out, r)}, {@code E
 * (r)}, row-major), so any trainer can feed it and tests can check it by hand.
 *
 * @param <K> the module key
 */
public final class RankAllocator<K> {
  private final double beta1;
  private final double beta2;
  private final Map<K, State> states = new LinkedHashMap<>();

  /** One module's current values and gradients. */
  public record Module(int r, int in, int out, float[] a, float[] aGrad, float[] b, float[] bGrad,
      float[] e, float[] eGrad) {}

  private static final class State {
    double[][] ipt = new double[3][];
    double[][] unc = new double[3][];
  }

  public RankAllocator(double beta1, double beta2) {
    this.beta1 = beta1;
    this.beta2 = beta2;
  }

  /** One step of the EMA updates from every module's values and gradients. */
  public void update(Map<K, Module> modules) {
    for (Map.Entry<K, Module> e : modules.entrySet()) {
      Module m = e.getValue();
      State s = states.computeIfAbsent(e.getKey(), k -> new State());
      float[][] w = {m.a(), m.b(), m.e()};
      float[][] g = {m.aGrad(), m.bGrad(), m.eGrad()};
      for (int p = 0; p < 3; p++) {
        if (s.ipt[p] == null) {
          s.ipt[p] = new double[w[p].length];
          s.unc[p] = new double[w[p].length];
        }
        for (int i = 0; i < w[p].length; i++) {
          double sens = Math.abs((double) w[p][i] * g[p][i]);
          s.ipt[p][i] = beta1 * s.ipt[p][i] + (1 - beta1) * sens;
          s.unc[p][i] = beta2 * s.unc[p][i] + (1 - beta2) * Math.abs(sens - s.ipt[p][i]);
        }
      }
    }
  }

  /** Each triplet's importance per module (length r), from the current EMAs. */
  public Map<K, double[]> tripletImportance(Map<K, Module> shapes) {
    Map<K, double[]> out = new LinkedHashMap<>();
    for (Map.Entry<K, Module> e : shapes.entrySet()) {
      Module m = e.getValue();
      State s = states.get(e.getKey());
      if (s == null) {
        throw new IllegalStateException("no importance for module " + e.getKey()
            + ": call update() first");
      }
      double[] t = new double[m.r()];
      for (int k = 0; k < m.r(); k++) {
        double rowA = 0;
        for (int j = 0; j < m.in(); j++) {
          rowA += s.ipt[0][k * m.in() + j] * s.unc[0][k * m.in() + j];
        }
        double colB = 0;
        for (int o = 0; o < m.out(); o++) {
          colB += s.ipt[1][o * m.r() + k] * s.unc[1][o * m.r() + k];
        }
        t[k] = s.ipt[2][k] * s.unc[2][k] + rowA / m.in() + colB / m.out();
      }
      out.put(e.getKey(), t);
    }
    return out;
  }

  /**
   * Zeroes (in place, in each module's {@code e}) the lambdas of the lowest-importance triplets so
   * that about {@code budget} remain; returns the kept-triplet masks (PEFT's rank_pattern).
   */
  public Map<K, boolean[]> maskToBudget(Map<K, Module> modules, int budget) {
    Map<K, double[]> imp = tripletImportance(modules);
    List<Double> all = new ArrayList<>();
    imp.values().forEach(v -> Arrays.stream(v).forEach(all::add));
    int k = all.size() - budget;
    double threshold = Double.NEGATIVE_INFINITY;
    if (k > 0) {
      double[] sorted = all.stream().mapToDouble(Double::doubleValue).sorted().toArray();
      threshold = sorted[Math.min(k, sorted.length) - 1];
    }
    Map<K, boolean[]> pattern = new LinkedHashMap<>();
    for (Map.Entry<K, Module> e : modules.entrySet()) {
      double[] t = imp.get(e.getKey());
      boolean[] keep = new boolean[t.length];
      for (int i = 0; i < t.length; i++) {
        keep[i] = !(t[i] <= threshold);
        if (!keep[i]) {
          e.getValue().e()[i] = 0f;
        }
      }
      pattern.put(e.getKey(), keep);
    }
    return pattern;
  }
}
