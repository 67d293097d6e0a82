package org.loratransplant.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Comparator;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The candidate-pruned nucleus sampler against a naive full-sort reference. */
class SamplerTest {

  /** Sort everything, keep the shortest prefix reaching topP, pick with the same u. */
  static int reference(float[] p, double topP, long seed) {
    double u = new SplittableRandom(seed).nextDouble();
    Integer[] order = new Integer[p.length];
    for (int i = 0; i < p.length; i++) {
      order[i] = i;
    }
    Arrays.sort(order, Comparator.comparingDouble((Integer i) -> -(double) (float) p[i])
        .thenComparingInt(i -> i));
    double sum = 0;
    for (float x : p) {
      sum += x;
    }
    double kept = 0;
    int n = 0;
    while (n < p.length && kept < topP * sum) {
      kept += p[order[n++]];
    }
    double acc = 0;
    for (int i = 0; i < n; i++) {
      acc += p[order[i]];
      if (acc > u * kept) {
        return order[i];
      }
    }
    return order[n - 1];
  }

  @Test
  void matchesTheFullSortReferenceOnPeakedFlatAndTiedDistributions() {
    SplittableRandom rng = new SplittableRandom(11);
    for (int trial = 0; trial < 3000; trial++) {
      int v = 2 + rng.nextInt(600);
      float[] p = new float[v];
      double sharp = trial % 3 == 0 ? 0.1 : trial % 3 == 1 ? 3 : 12;
      double sum = 0;
      for (int i = 0; i < v; i++) {
        double logit = rng.nextGaussian() * sharp;
        if (trial % 7 == 0) {
          logit = Math.round(logit); // many exact ties
        }
        p[i] = (float) Math.exp(logit);
        sum += p[i];
      }
      for (int i = 0; i < v; i++) {
        p[i] /= (float) sum;
      }
      double topP = new double[] {0.1, 0.5, 0.9, 0.99, 1.0}[trial % 5];
      long seed = rng.nextLong();
      Sampler s = new Sampler(new GenerationParams(1, 1.0, topP, new int[0]), seed, v);
      int got = s.next(p, 0);
      if (topP < 1) {
        assertEquals(reference(p, topP, seed), got, "trial " + trial);
      } else {
        double u = new SplittableRandom(seed).nextDouble();
        double acc = 0;
        int want = v - 1;
        double total = 0;
        for (float x : p) {
          total += x;
        }
        for (int i = 0; i < v; i++) {
          acc += p[i];
          if (acc > u * total) {
            want = i;
            break;
          }
        }
        assertEquals(want, got, "trial " + trial);
      }
    }
  }

  @Test
  void matchesTheReferenceOnAFlatDistributionOverALargeVocabulary() {
    // What a random-weight 49152-token model gives: ~90% of the vocabulary in the nucleus.
    SplittableRandom rng = new SplittableRandom(5);
    int v = 49152;
    for (int trial = 0; trial < 12; trial++) {
      float[] p = new float[v];
      double sum = 0;
      for (int i = 0; i < v; i++) {
        p[i] = (float) Math.exp(rng.nextGaussian() * (trial % 2 == 0 ? 0.05 : 1.5));
        sum += p[i];
      }
      for (int i = 0; i < v; i++) {
        p[i] /= (float) sum;
      }
      double topP = trial % 3 == 0 ? 0.9 : trial % 3 == 1 ? 0.5 : 0.999;
      long seed = rng.nextLong();
      Sampler s = new Sampler(new GenerationParams(1, 1.0, topP, new int[0]), seed, v);
      assertEquals(reference(p, topP, seed), s.next(p, 0), "trial " + trial);
    }
  }

  @Test
  void samplingRowsOnSeveralThreadsPicksWhatOneThreadPicks() {
    int rows = 32;
    int v = 49152;
    float[] probs = new float[rows * v];
    java.util.SplittableRandom rng = new java.util.SplittableRandom(11);
    for (int r = 0; r < rows; r++) {
      double sum = 0;
      for (int i = 0; i < v; i++) {
        probs[r * v + i] = (float) Math.exp(3 * rng.nextGaussian());
        sum += probs[r * v + i];
      }
      for (int i = 0; i < v; i++) {
        probs[r * v + i] /= (float) sum;
      }
    }
    int[][] picked = new int[3][rows];
    for (int threads = 1; threads <= 3; threads++) {
      Sampler[] samplers = new Sampler[rows];
      for (int r = 0; r < rows; r++) {
        // Every fifth row has finished: no sampler, its slot is left as it was.
        samplers[r] = r % 5 == 4 ? null
            : new Sampler(new GenerationParams(1, 1.0, 0.9, new int[0]), 100 + r, v);
        picked[threads - 1][r] = -7;
      }
      for (int step = 0; step < 3; step++) { // each sampler's stream moves on every step
        Sampler.nextAll(samplers, probs, v, picked[threads - 1], threads);
      }
    }
    assertArrayEquals(picked[0], picked[1]);
    assertArrayEquals(picked[0], picked[2]);
    for (int r = 0; r < rows; r++) {
      assertEquals(r % 5 == 4, picked[0][r] == -7, "row " + r);
    }
    assertTrue(java.util.Arrays.stream(picked[0]).distinct().count() > 10, "rows differ");
  }
}
