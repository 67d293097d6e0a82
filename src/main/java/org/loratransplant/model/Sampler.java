package org.loratransplant.model;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Picks the next token of one request from its logits with the request's own random stream, so
 * a request's output depends only on its seed and never on which requests share its batch.
 */
final class Sampler {
  private final GenerationParams params;
  private final SplittableRandom random;
  private final long[] keys;
  private final double[] probs;

  Sampler(GenerationParams params, long seed, int vocab) {
    this.params = params;
    this.random = new SplittableRandom(seed);
    this.keys = new long[vocab];
    this.probs = new double[vocab];
  }

  /** Whether {@link #next} takes probabilities (softmax at the temperature) or raw logits. */
  boolean wantsProbabilities() {
    return params.temperature() > 0;
  }

  /**
   * Next token from row {@code values[offset .. offset + vocab)}: raw logits when greedy, else
   * the softmax at the sampling temperature (computed for the whole batch in one op).
   */
  int next(float[] values, int offset) {
    int vocab = probs.length;
    if (params.temperature() == 0) {
      return argmax(values, offset, vocab);
    }
    double sum = 0;
    double max = 0;
    for (int i = 0; i < vocab; i++) {
      probs[i] = values[offset + i];
      sum += probs[i];
      max = Math.max(max, probs[i]);
    }
    double u = random.nextDouble();
    if (params.topP() >= 1) {
      double target = u * sum;
      double acc = 0;
      for (int i = 0; i < vocab; i++) {
        acc += probs[i];
        if (acc > target) {
          return i;
        }
      }
      return argmax(values, offset, vocab);
    }
    // The nucleus is the shortest prefix of the descending order whose mass reaches topP. All
    // tokens with p >= tau come first in that order, so once their mass reaches topP the nucleus
    // lies among them and only they need sorting: lower tau until it does.
    double threshold = params.topP() * sum;
    double tau = max;
    int n;
    double candidateMass;
    do {
      tau /= 16;
      n = 0;
      candidateMass = 0;
      for (int i = 0; i < vocab; i++) {
        if (probs[i] >= tau) {
          // Most probable first, ties by lower id: one primitive sort of keys that pack the
          // probability's float bits (order-preserving when non-negative) above ~id.
          keys[n++] = ((long) Float.floatToIntBits((float) probs[i]) << 32) | (0xFFFFFFFFL - i);
          candidateMass += probs[i];
        }
      }
    } while (candidateMass < threshold && tau > 0 && n < vocab);
    Arrays.sort(keys, 0, n);
    double kept = 0;
    int m = 0;
    while (m < n && kept < threshold) {
      kept += probs[idAt(n - 1 - m)];
      m++;
    }
    double target = u * kept;
    double acc = 0;
    for (int i = 0; i < m; i++) {
      int id = idAt(n - 1 - i);
      acc += probs[id];
      if (acc > target) {
        return id;
      }
    }
    return idAt(n - m);
  }

  private int idAt(int sortedIndex) {
    return (int) (0xFFFFFFFFL - (keys[sortedIndex] & 0xFFFFFFFFL));
  }

  static int argmax(float[] logits, int offset, int vocab) {
    int best = 0;
    for (int i = 1; i < vocab; i++) {
      if (logits[offset + i] > logits[offset + best]) {
        best = i;
      }
    }
    return best;
  }
}
