package org.loratransplant.report;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.TreeMap;

/**
 * Paired tests of a method against a baseline on the same test items: the exact McNemar test
 * for 0/1 scores and a paired bootstrap for any per-item score. Differences are always
 * {@code method - baseline}.
 */
public final class PairedTests {
  private PairedTests() {}

  /**
   * Exact McNemar: {@code b} items only the method got right, {@code c} only the baseline,
   * {@code p} the two-sided binomial p-value on the b + c discordant pairs.
   */
  public record McNemar(int n, int b, int c, double p) {
    public double difference() {
      return (double) (b - c) / n;
    }
  }

  /**
   * Paired bootstrap of the mean difference: {@code meanDiff} on the data, {@code lo}/{@code hi}
   * the 2.5% and 97.5% percentiles of the resampled means, {@code p} two-sided.
   */
  public record Bootstrap(int n, double meanDiff, double lo, double hi, double p,
      int resamples, long seed) {}

  /** Two methods' scores paired item by item over the seeds they were paired on. */
  public record Paired(double[] method, double[] baseline, List<Integer> seeds) {
    public int size() {
      return method.length;
    }
  }

  /** Exact two-sided McNemar test on two 0/1 vectors of equal length. */
  public static McNemar mcnemar(double[] method, double[] baseline) {
    checkSameLength(method, baseline);
    int b = 0;
    int c = 0;
    for (int i = 0; i < method.length; i++) {
      boolean m = bit(method[i], "method", i);
      boolean s = bit(baseline[i], "baseline", i);
      if (m && !s) {
        b++;
      } else if (s && !m) {
        c++;
      }
    }
    return new McNemar(method.length, b, c, mcnemarP(b, c));
  }

  /**
   * {@code min(1, 2 P[X <= min(b, c)])} for {@code X ~ Binomial(b + c, 1/2)}; the binomial terms
   * are summed from their logarithms so that large counts neither overflow nor underflow early.
   */
  public static double mcnemarP(int b, int c) {
    if (b < 0 || c < 0) {
      throw new IllegalArgumentException("discordant counts must be >= 0: b=" + b + " c=" + c);
    }
    int m = b + c;
    int k = Math.min(b, c);
    if (m == 0 || 2 * k == m) {
      return 1.0;
    }
    double logHalfPow = -m * Math.log(2);
    double logC = 0; // log C(m, 0)
    double tail = 0;
    for (int i = 0; i <= k; i++) {
      if (i > 0) {
        logC += Math.log(m - i + 1) - Math.log(i);
      }
      tail += Math.exp(logC + logHalfPow);
    }
    return Math.min(1.0, 2 * tail);
  }

  /**
   * Paired bootstrap: resamples item indices with replacement {@code resamples} times from a
   * generator seeded with {@code seed} (the same inputs and seed give the same result). The p
   * value is twice the smaller share of resampled means on either side of zero, each counted
   * with the observed sample ((count + 1) / (B + 1)), capped at 1.
   */
  public static Bootstrap bootstrap(double[] method, double[] baseline, int resamples,
      long seed) {
    checkSameLength(method, baseline);
    if (resamples < 1) {
      throw new IllegalArgumentException("resamples must be >= 1, was " + resamples);
    }
    int n = method.length;
    double[] d = new double[n];
    double mean = 0;
    for (int i = 0; i < n; i++) {
      d[i] = method[i] - baseline[i];
      mean += d[i];
    }
    mean /= n;
    SplittableRandom rng = new SplittableRandom(seed);
    double[] means = new double[resamples];
    int atOrBelow = 0;
    int atOrAbove = 0;
    for (int r = 0; r < resamples; r++) {
      double s = 0;
      for (int i = 0; i < n; i++) {
        s += d[rng.nextInt(n)];
      }
      means[r] = s / n;
      // Differences of scores on a grid (0/1, F over short answers) make exact zeros common;
      // a tolerance keeps a mean that is 0 up to rounding on both sides.
      if (means[r] <= 1e-12) {
        atOrBelow++;
      }
      if (means[r] >= -1e-12) {
        atOrAbove++;
      }
    }
    Arrays.sort(means);
    double p = Math.min(1.0, 2.0 * (Math.min(atOrBelow, atOrAbove) + 1) / (resamples + 1));
    return new Bootstrap(n, mean, percentile(means, 0.025), percentile(means, 0.975), p,
        resamples, seed);
  }

  /** Linear interpolation between order statistics (type 7, numpy's default). */
  static double percentile(double[] sorted, double q) {
    double h = (sorted.length - 1) * q;
    int lo = (int) Math.floor(h);
    int hi = Math.min(lo + 1, sorted.length - 1);
    return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
  }

  /**
   * Pairs {@code method}'s runs with {@code baseline}'s on one task, target and metric across
   * (seed, item): seed s of the method with seed s of the baseline, items concatenated in seed
   * order. A side with a single run (vanilla, which has no seed) is reused for every seed of
   * the other side; otherwise only seeds both sides have are paired.
   */
  public static Paired pair(List<ItemScores> items, String task, String target, String metric,
      String method, String baseline) {
    TreeMap<Integer, ItemScores> m = runs(items, task, target, metric, method);
    TreeMap<Integer, ItemScores> b = runs(items, task, target, metric, baseline);
    if (m.isEmpty() || b.isEmpty()) {
      throw new IllegalArgumentException("no per-item " + metric + " scores for "
          + (m.isEmpty() ? method : baseline) + " on " + task + "/" + target);
    }
    List<Integer> seeds = new ArrayList<>();
    List<ItemScores[]> pairs = new ArrayList<>();
    if (b.size() == 1 || m.size() == 1) {
      TreeMap<Integer, ItemScores> many = b.size() == 1 ? m : b;
      for (int seed : many.keySet()) {
        seeds.add(seed);
        pairs.add(new ItemScores[] {m.size() == 1 ? m.firstEntry().getValue() : m.get(seed),
            b.size() == 1 ? b.firstEntry().getValue() : b.get(seed)});
      }
    } else {
      for (var e : m.entrySet()) {
        if (b.containsKey(e.getKey())) {
          seeds.add(e.getKey());
          pairs.add(new ItemScores[] {e.getValue(), b.get(e.getKey())});
        }
      }
      if (seeds.isEmpty()) {
        throw new IllegalArgumentException(method + " (seeds " + m.keySet() + ") and " + baseline
            + " (seeds " + b.keySet() + ") share no seed on " + task + "/" + target);
      }
    }
    int total = 0;
    for (ItemScores[] p : pairs) {
      if (p[0].size() != p[1].size()) {
        throw new IllegalArgumentException(p[0] + " and " + p[1]
            + " differ in item count: they were not scored on the same test items");
      }
      total += p[0].size();
    }
    double[] mv = new double[total];
    double[] bv = new double[total];
    int k = 0;
    for (ItemScores[] p : pairs) {
      for (int i = 0; i < p[0].size(); i++, k++) {
        mv[k] = p[0].at(i);
        bv[k] = p[1].at(i);
      }
    }
    return new Paired(mv, bv, List.copyOf(seeds));
  }

  private static TreeMap<Integer, ItemScores> runs(List<ItemScores> items, String task,
      String target, String metric, String method) {
    TreeMap<Integer, ItemScores> out = new TreeMap<>();
    for (ItemScores s : items) {
      if (s.task().equals(task) && s.target().equals(target) && s.metric().equals(metric)
          && s.method().equals(method) && out.put(s.seed(), s) != null) {
        throw new IllegalArgumentException("two per-item runs for " + s);
      }
    }
    return out;
  }

  private static void checkSameLength(double[] method, double[] baseline) {
    if (method.length != baseline.length) {
      throw new IllegalArgumentException("paired scores differ in length: method "
          + method.length + " vs baseline " + baseline.length);
    }
    if (method.length == 0) {
      throw new IllegalArgumentException("no paired items");
    }
  }

  private static boolean bit(double x, String side, int i) {
    if (x != 0 && x != 1) {
      throw new IllegalArgumentException(side + " item " + i + " = " + x
          + ": McNemar needs 0/1 scores");
    }
    return x == 1;
  }
}
