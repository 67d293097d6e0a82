package org.loratransplant.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.engine.PtNDArray;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.List;

/**
 * Continuous batching: a KV cache of a fixed number of rows, each holding one request at its own
 * slots. When a request finishes (eos or a stop id, its token limit, the context) its row is
 * free at once; waiting prompts are prefilled into free rows ({@code prefill_rows}) while the
 * other rows keep their cache, and each step advances every row by one token at the row's own
 * slot and position ({@code step_rows}). A static batch instead runs until its longest request
 * ends, its finished rows decoding padding meanwhile.
 *
 * <p>Free rows are refilled once {@link #REFILL_DIVISOR}-th of the rows (at least one) are free,
 * or every waiting prompt fits: each refill is one forward call, so refilling a row at a time
 * would add a call per request, which on small models costs as much as a step of the whole
 * batch. Prompts refilled together are left-padded to the longest of them, as a static batch.
 * Once no prompt waits and at most half the rows still decode, the cache is cut down to those
 * rows ({@code keep_rows}).
 *
 * <p>A request's tokens do not depend on the others: its sampler is its own ({@link Sampler}),
 * its row sees only its own slots, so its tokens equal the request run alone, as a static
 * batch's do: up to float rounding of other batch shapes (from 64 rows on, products run on
 * oneDNN rather than MKL), which the tests find to leave greedy and sampled tokens unchanged.
 */
final class ContinuousBatch {
  /** Free rows wait until this fraction of the rows is free (see the class comment). */
  static final int REFILL_DIVISOR = 8;

  private final FusedDecoder decoder;
  private final ModelConfig config;
  private final NDManager parent;
  private final List<int[]> prompts;
  private final long[] seeds;
  private final int[] limits;
  private final GenerationParams params;
  private final int lanes;
  private final LanguageModel.Finished finished;

  /**
   * @param limits each request's most new tokens (each at most {@code params.maxNewTokens()})
   * @param finished told of each request as it ends, with its index in {@code prompts}; or null
   */
  ContinuousBatch(FusedDecoder decoder, ModelConfig config, NDManager parent, List<int[]> prompts,
      long[] seeds, int[] limits, GenerationParams params, int lanes,
      LanguageModel.Finished finished) {
    this.decoder = decoder;
    this.config = config;
    this.parent = parent;
    this.prompts = prompts;
    this.seeds = seeds;
    this.limits = limits;
    this.params = params;
    this.lanes = lanes;
    this.finished = finished;
  }

  /** Generates every request on {@code rows} cache rows; results in request order. */
  LanguageModel.Generation[] run(int rows) {
    int n = prompts.size();
    LanguageModel.Generation[] out = new LanguageModel.Generation[n];
    if (n == 0) {
      return out;
    }
    int vocab = config.vocabSize();
    int window = config.slidingWindow();
    int maxPos = config.maxPositions();
    int longest = 0;
    int capacity = 1;
    for (int[] p : prompts) {
      longest = Math.max(longest, p.length);
    }
    for (int i = 0; i < n; i++) {
      // A refill group is padded to at most `longest`; its last fed token sits at slot
      // padded length + steps - 2.
      capacity = Math.max(capacity, longest + maxSteps(i) - 1);
    }
    int b = Math.min(rows, n);
    Deque<Integer> waiting = new ArrayDeque<>();
    for (int i = 0; i < n; i++) {
      if (limits[i] > 0) {
        waiting.add(i);
      } else { // nothing to generate: no forward, as the static path
        out[i] = new LanguageModel.Generation(new int[0], "length");
        if (finished != null) {
          finished.accept(i, out[i]);
        }
      }
    }
    int[] request = new int[b]; // the request in each row, -1 when free
    int[] start = new int[b]; // its first slot (left padding before it)
    int[] slot = new int[b]; // the slot its next fed token is written to, -1 when free
    long[] next = new long[b]; // that token
    Arrays.fill(request, -1);
    Arrays.fill(slot, -1);
    Sampler[] samplers = new Sampler[n];
    List<List<Integer>> generated = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      generated.add(null);
    }
    double temperature = params.temperature() > 0 ? params.temperature() : 0;
    int active = 0;
    float[] values = new float[b * vocab];
    KvCache cache = decoder.newCache(b, capacity);
    try (NDManager scope = parent.newSubManager()) {
      while (active > 0 || !waiting.isEmpty()) {
        int free = b - active;
        if (!waiting.isEmpty() && free > 0
            && (free >= Math.max(1, b / REFILL_DIVISOR) || free >= waiting.size()
                || active == 0)) {
          int g = Math.min(free, waiting.size());
          int[] group = new int[g];
          int[] groupRows = new int[g];
          int t = 0;
          for (int j = 0, r = 0; j < g; r++) {
            if (request[r] < 0) {
              groupRows[j] = r;
              group[j] = waiting.poll();
              t = Math.max(t, prompts.get(group[j]).length);
              j++;
            }
          }
          long[] ids = new long[g * t];
          long[] positions = new long[g * t];
          int[] pad = new int[g];
          long[] rowIds = new long[g];
          for (int j = 0; j < g; j++) {
            int[] p = prompts.get(group[j]);
            pad[j] = t - p.length;
            rowIds[j] = groupRows[j];
            for (int i = 0; i < p.length; i++) {
              ids[j * t + pad[j] + i] = p[i];
              positions[j * t + pad[j] + i] = i;
            }
          }
          IntraOpThreads.forWork(config, (long) g * t, lanes);
          try (NDManager s = scope.newSubManager()) {
            NDArray o = decoder.prefillRows(cache, s.create(rowIds, new Shape(g)),
                s.create(ids, new Shape(g, t)), s.create(positions, new Shape(g, t)),
                s.create(AttentionMasks.leftPadded(pad, t, 0, window),
                    FusedDecoder.maskShape(g, t, t)), temperature, s);
            copyInto(o, values);
          }
          for (int j = 0; j < g; j++) {
            int r = groupRows[j];
            int i = group[j];
            request[r] = i;
            start[r] = pad[j];
            slot[r] = t;
            samplers[i] = new Sampler(params, seeds[i], vocab);
            generated.set(i, new ArrayList<>());
            active++;
            if (take(i, samplers[i].next(values, j * vocab), prompts.get(i).length, generated,
                out, next, r)) {
              free(r, request, slot);
              active--;
            }
          }
          continue;
        }
        if (active == 0) {
          continue; // every refilled request ended at its first token: refill again
        }
        if (waiting.isEmpty() && b > 1 && active <= b / 2) {
          // No prompt waits: shrink the cache to the rows still decoding.
          int[] keep = new int[active];
          long[] keepIds = new long[active];
          for (int r = 0, j = 0; r < b; r++) {
            if (request[r] >= 0) {
              keep[j] = r;
              keepIds[j++] = r;
            }
          }
          KvCache smaller;
          try (NDManager s = scope.newSubManager()) {
            smaller = decoder.keepRows(cache, s.create(keepIds, new Shape(active)));
          }
          cache.close();
          cache = smaller;
          request = pick(request, keep);
          start = pick(start, keep);
          slot = pick(slot, keep);
          long[] nextKept = new long[active];
          for (int j = 0; j < active; j++) {
            nextKept[j] = next[keep[j]];
          }
          next = nextKept;
          b = active;
        }
        int s = 0;
        long[] positions = new long[b];
        long[] slots = new long[b];
        long[] ids = new long[b];
        for (int r = 0; r < b; r++) {
          if (request[r] >= 0) {
            s = Math.max(s, slot[r] + 1);
            positions[r] = slot[r] - start[r];
            slots[r] = slot[r];
            ids[r] = next[r];
          }
          // A free row feeds token 0 at position 0 into its slot 0, seeing nothing; its output
          // is never read and its slots are rewritten by the next refill.
        }
        IntraOpThreads.forWork(config, b, lanes);
        try (NDManager st = scope.newSubManager()) {
          NDArray o = decoder.stepRows(cache, st.create(ids, new Shape(b, 1)),
              st.create(positions, new Shape(b, 1)), st.create(slots, new Shape(b)),
              st.create(AttentionMasks.rows(start, slot, s, window),
                  FusedDecoder.maskShape(b, 1, s)), temperature, st);
          copyInto(o, values);
        }
        Sampler[] rowSamplers = new Sampler[b];
        for (int r = 0; r < b; r++) {
          rowSamplers[r] = request[r] < 0 ? null : samplers[request[r]];
        }
        int[] chosen = new int[b];
        Sampler.nextAll(rowSamplers, values, vocab, chosen, IntraOpThreads.current());
        for (int r = 0; r < b; r++) {
          int i = request[r];
          if (i < 0) {
            continue;
          }
          slot[r]++;
          int pos = slot[r] - start[r]; // the position of the token chosen now
          if (take(i, chosen[r], pos, generated, out, next, r)) {
            free(r, request, slot);
            active--;
          }
        }
      }
    } finally {
      cache.close();
    }
    return out;
  }

  /**
   * Records {@code tok}, request i's next token, to sit at {@code pos}; true when the request
   * ended (its generation is then in {@code out} and reported).
   */
  private boolean take(int i, int tok, int pos, List<List<Integer>> generated,
      LanguageModel.Generation[] out, long[] next, int r) {
    List<Integer> g = generated.get(i);
    String finish = null;
    if (params.isEos(tok)) {
      finish = "eos";
    } else {
      g.add(tok);
      next[r] = tok;
      if (g.size() >= limits[i]) {
        finish = "length";
      } else if (pos >= config.maxPositions()) {
        finish = "context";
      }
    }
    if (finish == null) {
      return false;
    }
    out[i] = new LanguageModel.Generation(g.stream().mapToInt(Integer::intValue).toArray(),
        finish);
    generated.set(i, null);
    if (finished != null) {
      finished.accept(i, out[i]);
    }
    return true;
  }

  private static void free(int r, int[] request, int[] slot) {
    request[r] = -1;
    slot[r] = -1;
  }

  /** Request i's most forwards: its limit, or up to the context (as the static path counts). */
  private int maxSteps(int i) {
    return Math.min(limits[i], config.maxPositions() - prompts.get(i).length + 1);
  }

  private static int[] pick(int[] a, int[] keep) {
    int[] out = new int[keep.length];
    for (int j = 0; j < keep.length; j++) {
      out[j] = a[keep[j]];
    }
    return out;
  }

  /**
   * As LanguageModel.copyInto (through a direct view), into the front of {@code dst}: a refill
   * has fewer rows than a step.
   */
  private static void copyInto(NDArray a, float[] dst) {
    java.nio.FloatBuffer f = ((PtNDArray) a).toByteBuffer(true).asFloatBuffer();
    f.get(dst, 0, f.remaining());
  }
}
