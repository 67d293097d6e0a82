package org.loratransplant.pipeline;

import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.IntStream;
import org.loratransplant.select.TokenSelection;

/**
 * How far two scorings of the same pool lead TiTok to different choices: the tokens whose
 * in/out decision of a top-k % selection per sample differs, how close to their sample's cut
 * the flipped ones were (in the reference's nats), and the share of the reference's top-M
 * samples by mean excess that the other scoring also puts in its top M.
 *
 * @param k the share of each sample's tokens kept
 * @param tokens tokens compared
 * @param tokenFlips tokens selected under one scoring and not the other
 * @param maxFlipMargin the largest |excess - cut| of a flipped token under the reference, where
 *     the cut is the mean of the last kept and the first dropped excess of its sample
 * @param sampleOverlap |top-M(reference) and top-M(other)| / M
 */
record SelectionAgreement(double k, int tokens, int tokenFlips, double maxFlipMargin,
    double sampleOverlap) {

  static SelectionAgreement of(List<float[]> reference, List<float[]> other, double k,
      int topSamples) {
    int tokens = 0;
    int flips = 0;
    double margin = 0;
    for (int i = 0; i < reference.size(); i++) {
      float[] ref = reference.get(i);
      float[] a = TokenSelection.perSample(ref, 100 * k);
      float[] b = TokenSelection.perSample(other.get(i), 100 * k);
      double cut = cut(ref, a);
      for (int j = 0; j < ref.length; j++) {
        tokens++;
        if (a[j] != b[j]) {
          flips++;
          margin = Math.max(margin, Math.abs(ref[j] - cut));
        }
      }
    }
    Set<Integer> top = topByMean(reference, topSamples);
    top.retainAll(topByMean(other, topSamples));
    return new SelectionAgreement(k, tokens, flips, margin,
        topSamples == 0 ? 1 : top.size() / (double) topSamples);
  }

  /** Midway between the lowest kept and the highest dropped excess. */
  private static double cut(float[] scores, float[] mask) {
    double kept = Double.POSITIVE_INFINITY;
    double dropped = Double.NEGATIVE_INFINITY;
    for (int j = 0; j < scores.length; j++) {
      if (mask[j] > 0) {
        kept = Math.min(kept, scores[j]);
      } else {
        dropped = Math.max(dropped, scores[j]);
      }
    }
    return Double.isInfinite(kept) ? dropped : Double.isInfinite(dropped) ? kept
        : (kept + dropped) / 2;
  }

  private static Set<Integer> topByMean(List<float[]> scores, int m) {
    double[] mean = scores.stream().mapToDouble(s -> IntStream.range(0, s.length)
        .mapToDouble(j -> s[j]).average().orElse(0)).toArray();
    return new HashSet<>(IntStream.range(0, scores.size()).boxed()
        .sorted(Comparator.<Integer>comparingDouble(i -> -mean[i]).thenComparing(i -> i))
        .limit(m).toList());
  }

  @Override
  public String toString() {
    return String.format(java.util.Locale.ROOT, "%d of %d tokens flip in or out of the top "
        + "%.0f%% (the farthest %.4f nats from its sample's cut); %.0f%% of the top-M samples "
        + "by mean excess shared", tokenFlips, tokens, 100 * k, maxFlipMargin, 100 * sampleOverlap);
  }
}
