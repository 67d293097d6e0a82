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
  private final Integer[] order;
  private final double[] probs;

  Sampler(GenerationParams params, long seed, int vocab) {
    this.params = params;
    this.random = new SplittableRandom(seed);
    this.order = new Integer[vocab];
    this.probs = new double[vocab];
  }

  /** Next token from {@code logits[offset .. offset + vocab)}. */
  int next(float[] logits, int offset) {
    int vocab = probs.length;
    if (params.temperature() == 0) {
      return argmax(logits, offset, vocab);
    }
    double max = Double.NEGATIVE_INFINITY;
    for (int i = 0; i < vocab; i++) {
      max = Math.max(max, logits[offset + i]);
    }
    double sum = 0;
    for (int i = 0; i < vocab; i++) {
      probs[i] = Math.exp((logits[offset + i] - max) / params.temperature());
      sum += probs[i];
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
      return argmax(logits, offset, vocab);
    }
    for (int i = 0; i < vocab; i++) {
      order[i] = i;
    }
    // Most probable first; equal probabilities by lower id so the order is deterministic.
    Arrays.sort(order, (a, b) -> probs[a] != probs[b] ? Double.compare(probs[b], probs[a])
        : Integer.compare(a, b));
    double threshold = params.topP() * sum;
    double kept = 0;
    int n = 0;
    while (n < vocab && kept < threshold) {
      kept += probs[order[n++]];
    }
    double target = u * kept;
    double acc = 0;
    for (int i = 0; i < n; i++) {
      acc += probs[order[i]];
      if (acc > target) {
        return order[i];
      }
    }
    return order[n - 1];
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
