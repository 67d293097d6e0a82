package org.loratransplant.eval;

/** An estimate from n examples with its 95% confidence interval. */
public record Interval(int n, double value, double lo, double hi) {

  /** Wilson score interval for k successes in n trials (z = 1.96). */
  public static Interval wilson(int k, int n) {
    if (n <= 0) {
      throw new IllegalArgumentException("no examples to estimate a proportion from");
    }
    double z = 1.959963984540054;
    double p = (double) k / n;
    double denom = 1 + z * z / n;
    double centre = (p + z * z / (2.0 * n)) / denom;
    double half = z * Math.sqrt(p * (1 - p) / n + z * z / (4.0 * n * n)) / denom;
    return new Interval(n, p, Math.max(0, centre - half), Math.min(1, centre + half));
  }

  /** Mean of per-example scores with a t-based 95% interval. */
  public static Interval mean(double[] xs) {
    int n = xs.length;
    if (n == 0) {
      throw new IllegalArgumentException("no examples to average");
    }
    double mean = 0;
    for (double x : xs) {
      mean += x;
    }
    mean /= n;
    if (n == 1) {
      return new Interval(1, mean, Double.NaN, Double.NaN);
    }
    double ss = 0;
    for (double x : xs) {
      ss += (x - mean) * (x - mean);
    }
    double se = Math.sqrt(ss / (n - 1) / n);
    double t = tQuantile975(n - 1);
    return new Interval(n, mean, mean - t * se, mean + t * se);
  }

  /** The 97.5% quantile of Student's t (two-sided 95%), tabulated then Cornish-Fisher. */
  static double tQuantile975(int df) {
    double[] table = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
        2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069,
        2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
    if (df <= table.length) {
      return table[df - 1];
    }
    double z = 1.959963984540054;
    double g1 = (z * z * z + z) / 4;
    double g2 = (5 * Math.pow(z, 5) + 16 * z * z * z + 3 * z) / 96;
    return z + g1 / df + g2 / ((double) df * df);
  }

  @Override
  public String toString() {
    return Double.isNaN(lo) ? String.format("%.3f (n=%d)", value, n)
        : String.format("%.3f [%.3f, %.3f] (n=%d)", value, lo, hi, n);
  }
}
