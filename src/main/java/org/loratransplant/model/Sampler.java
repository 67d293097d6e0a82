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
    // Most probable first, equal probabilities by lower id: one primitive sort of keys that pack
    // the probability's float bits (order-preserving for non-negative floats) above the
    // complemented id. Sorting boxed indices with a comparator cost a fifth of a decode step.
    for (int i = 0; i < vocab; i++) {
      keys[i] = ((long) Float.floatToIntBits((float) probs[i]) << 32) | (0xFFFFFFFFL - i);
    }
    Arrays.sort(keys);
    double threshold = params.topP() * sum;
    double kept = 0;
    int n = 0;
    while (n < vocab && kept < threshold) {
      kept += probs[idAt(vocab - 1 - n)];
      n++;
    }
    double target = u * kept;
    double acc = 0;
    for (int i = 0; i < n; i++) {
      int id = idAt(vocab - 1 - i);
      acc += probs[id];
      if (acc > target) {
        return id;
      }
    }
    return idAt(vocab - n);
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
