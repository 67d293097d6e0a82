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
  private final double[] probs;

  Sampler(GenerationParams params, long seed, int vocab) {
    this.params = params;
    this.random = new SplittableRandom(seed);
    this.probs = new double[vocab];
    this.bits = new int[vocab];
  }

  /**
   * The next token of every row {@code r} with a sampler, {@code samplers[r].next(values, r *
   * vocab)} into {@code out[r]} (rows without one are left alone), on up to {@code threads}
   * threads: a sampled row is several passes over the vocabulary in Java (~0.5 ms for 49152
   * tokens), 15 ms of a 32-row step that the forward's intra-op threads sit out. Each row has its
   * own sampler and random stream, so the tokens do not depend on the threads.
   */
  static void nextAll(Sampler[] samplers, float[] values, int vocab, int[] out, int threads) {
    int rows = samplers.length;
    java.util.function.IntConsumer pick = r -> {
      if (samplers[r] != null) {
        out[r] = samplers[r].next(values, r * vocab);
      }
    };
    if (threads <= 1 || rows < 2 || (long) rows * vocab < PARALLEL_VALUES) {
      for (int r = 0; r < rows; r++) {
        pick.accept(r);
      }
      return;
    }
    int parts = Math.min(threads, rows);
    java.util.concurrent.CompletableFuture<?>[] rest =
        new java.util.concurrent.CompletableFuture<?>[parts - 1];
    for (int p = 1; p < parts; p++) {
      int from = p * rows / parts;
      int to = (p + 1) * rows / parts;
      rest[p - 1] = java.util.concurrent.CompletableFuture.runAsync(() -> {
        for (int r = from; r < to; r++) {
          pick.accept(r);
        }
      }, POOL);
    }
    for (int r = 0; r < rows / parts; r++) {
      pick.accept(r);
    }
    java.util.concurrent.CompletableFuture.allOf(rest).join();
  }

  /** Below this many values in all a step's rows sampling stays on the calling thread. */
  private static final long PARALLEL_VALUES = 1L << 16;

  /** Daemon threads for {@link #nextAll}, shared by every model and batch in the JVM. */
  private static final java.util.concurrent.ExecutorService POOL =
      java.util.concurrent.Executors.newCachedThreadPool(r -> {
        Thread t = new Thread(r, "sampler");
        t.setDaemon(true);
        return t;
      });

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
    for (int i = 0; i < vocab; i++) {
      probs[i] = values[offset + i];
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
      return argmax(values, offset, vocab);
    }
    // The nucleus is the shortest prefix of the descending order (probability, then lower id)
    // whose mass reaches topP; the token is the first of that order whose running mass exceeds
    // u times the nucleus's mass. Both are found without sorting: a radix select over the
    // probabilities' float bits (order-preserving for non-negative floats) walks 12, 12 and 8
    // bits of the key, each level one pass over the tokens of the bucket the boundary is in.
    // A near-uniform distribution over 49152 tokens (random weights, high temperature) puts
    // ~90% of them in the nucleus, which sorting took ~3 ms a row to find; this takes ~0.2 ms.
    for (int i = 0; i < vocab; i++) {
      bits[i] = Float.floatToIntBits(values[offset + i]);
    }
    double threshold = params.topP() * sum;
    int last = boundary(threshold, false);
    double kept = boundaryMass;
    int token = boundary(u * kept, true);
    // u * kept rounds to kept when u is just below 1: then the nucleus's last token.
    return boundaryMass > kept ? last : token;
  }

  private final int[] bits;
  private final double[] bucketMass = new double[1 << 12];
  private double boundaryMass; // the running mass at the token boundary() returned

  /**
   * The first token in descending order (probability, then lower id) whose running mass
   * (inclusive) exceeds {@code x} ({@code strict}) or reaches it; the last token when none
   * does. Sets {@link #boundaryMass} to the running mass at that token.
   */
  private int boundary(double x, boolean strict) {
    int vocab = probs.length;
    int prefix = 0; // the key bits fixed so far, above `shift + width`
    double above = 0; // mass of every token with a larger key
    int[][] levels = {{20, 12}, {8, 12}, {0, 8}};
    for (int[] level : levels) {
      int shift = level[0];
      int width = level[1];
      int buckets = 1 << width;
      int fixedShift = shift + width;
      java.util.Arrays.fill(bucketMass, 0, buckets, 0);
      for (int i = 0; i < vocab; i++) {
        int b = bits[i];
        if (fixedShift == 32 || (b >>> fixedShift) == prefix) {
          bucketMass[(b >>> shift) & (buckets - 1)] += probs[i];
        }
      }
      int chosen = 0;
      for (int k = buckets - 1; k >= 0; k--) {
        double next = above + bucketMass[k];
        if (bucketMass[k] > 0 && (strict ? next > x : next >= x)) {
          chosen = k;
          break;
        }
        above = next;
        chosen = -1;
      }
      if (chosen < 0) {
        // Rounding put the boundary past every bucket: settle on the smallest non-empty one.
        for (int k = 0; k < buckets; k++) {
          if (bucketMass[k] > 0) {
            above -= bucketMass[k];
            chosen = k;
            break;
          }
        }
      }
      prefix = (prefix << width) | chosen;
    }
    // Every token with key `prefix` ties: lower ids first.
    int lastTie = -1;
    double acc = above;
    for (int i = 0; i < vocab; i++) {
      if (bits[i] == prefix) {
        acc += probs[i];
        lastTie = i;
        if (strict ? acc > x : acc >= x) {
          boundaryMass = acc;
          return i;
        }
      }
    }
    boundaryMass = acc;
    return lastTie;
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
