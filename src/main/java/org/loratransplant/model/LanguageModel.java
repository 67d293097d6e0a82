package org.loratransplant.model;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.engine.PtNDArray;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import org.loratransplant.tokenizer.TextTokenizer;

/**
 * A loaded model with its tokenizer and the two primitives the pipeline needs: teacher-forced
 * per-token log-probs ({@link #logprobs}) and batched sampling ({@link #generate}). Both run on
 * a {@link FusedDecoder} and take an optional {@link Adapter}: the expert and the amateur of
 * excess scoring are the same base with the adapter on or off. The folded copies of the base and
 * of the adapter used last are kept ({@link FoldedDecoders}).
 */
public final class LanguageModel implements AutoCloseable {
  private final LlamaModel model;
  private final TextTokenizer tokenizer; // null when the directory has none

  private volatile int lanes = 1;
  private volatile boolean continuous = true;
  private final FoldedDecoders decoders;

  private LanguageModel(LlamaModel model, TextTokenizer tokenizer) {
    this.model = model;
    this.tokenizer = tokenizer;
    this.decoders = new FoldedDecoders(model);
  }

  /** Loads weights and, when present, {@code tokenizer.json}. */
  public static LanguageModel load(Path dir, Device device) {
    LlamaModel m = LlamaModel.load(dir, device);
    try {
      TextTokenizer tok = TextTokenizer.exists(dir)
          ? TextTokenizer.load(dir, m.config().bosTokenId()) : null;
      return new LanguageModel(m, tok);
    } catch (RuntimeException e) {
      m.close();
      throw e;
    }
  }

  public ModelConfig config() {
    return model.config();
  }

  public LlamaModel model() {
    return model;
  }

  /** The tokenizer; fails with a clear message when the model directory has none. */
  public TextTokenizer tokenizer() {
    if (tokenizer == null) {
      throw new IllegalStateException(model.directory() + " has no tokenizer.json");
    }
    return tokenizer;
  }

  public boolean hasTokenizer() {
    return tokenizer != null;
  }

  /**
   * How many threads one batch may use, each running a contiguous part of it ({@link Lanes});
   * 1 (the default) runs a batch on the calling thread. Results do not depend on it.
   */
  public void setLanes(int lanes) {
    if (lanes < 1) {
      throw new IllegalArgumentException("lanes must be at least 1, got " + lanes);
    }
    this.lanes = lanes;
  }

  /**
   * Whether {@link #generate} batches continuously (the default): a finished row leaves the
   * batch at once and the next prompt takes its place in the cache, instead of every batch
   * running until its longest row is done. Results do not depend on it.
   */
  public void setContinuousBatching(boolean continuous) {
    this.continuous = continuous;
  }

  /** The model's eos ids (generation_config.json). */
  public int[] eosIds() {
    return config().eosTokenIds().stream().mapToInt(Integer::intValue).toArray();
  }

  /**
   * Teacher-forced log-probs: for each pair, {@code log P(response_i | prompt, response_<i)} for
   * every response token. Pairs are sorted by length and run {@code batchSize} at a time,
   * right-padded (padding sits after every real token, so the causal mask alone keeps it
   * invisible and a batched result equals the single-request one).
   */
  public List<float[]> logprobs(List<int[]> prompts, List<int[]> responses, Adapter adapter,
      int batchSize) {
    if (prompts.size() != responses.size()) {
      throw new IllegalArgumentException(prompts.size() + " prompts but " + responses.size()
          + " responses");
    }
    int n = prompts.size();
    for (int i = 0; i < n; i++) {
      if (prompts.get(i).length == 0) {
        throw new IllegalArgumentException("request " + i + ": the prompt is empty; the first "
            + "scored token needs context (start prompts with BOS)");
      }
      checkIds(prompts.get(i), "request " + i + " prompt");
      checkIds(responses.get(i), "request " + i + " response");
      int len = prompts.get(i).length + responses.get(i).length;
      if (len > config().maxPositions()) {
        throw new IllegalArgumentException("request " + i + " has " + len + " tokens, more than "
            + "the model's " + config().maxPositions() + " positions");
      }
    }
    Integer[] order = new Integer[n];
    for (int i = 0; i < n; i++) {
      order[i] = i;
    }
    Arrays.sort(order, Comparator.comparingInt(
        (Integer i) -> -(prompts.get(i).length + responses.get(i).length)).thenComparing(i -> i));
    float[][] out = new float[n][];
    try (FoldedDecoders.Lease decoder = decoders.acquire(adapter)) {
      for (int start = 0; start < n; start += batchSize) {
        int[] batch = new int[Math.min(batchSize, n - start)];
        for (int j = 0; j < batch.length; j++) {
          batch[j] = order[start + j];
        }
        int lanes = this.lanes;
        Lanes.run(batch.length, lanes, (from, to) -> {
          scoreBatch(decoder.decoder(), Arrays.copyOfRange(batch, from, to), prompts, responses,
              out, lanes);
          return null;
        });
      }
    }
    return Arrays.asList(out);
  }

  private void scoreBatch(FusedDecoder decoder, int[] batch, List<int[]> prompts,
      List<int[]> responses, float[][] out, int lanes) {
    int b = batch.length;
    int t = 0;
    int n = 0;
    for (int r : batch) {
      t = Math.max(t, prompts.get(r).length + responses.get(r).length);
      n += responses.get(r).length;
    }
    long[] ids = new long[b * t];
    long[] rows = new long[n]; // the positions whose next token is a response token
    long[] targets = new long[n];
    int k = 0;
    for (int row = 0; row < b; row++) {
      int[] p = prompts.get(batch[row]);
      int[] y = responses.get(batch[row]);
      for (int i = 0; i < p.length; i++) {
        ids[row * t + i] = p[i];
      }
      for (int i = 0; i < y.length; i++) {
        ids[row * t + p.length + i] = y[i];
        rows[k] = (long) row * t + p.length - 1 + i;
        targets[k++] = y[i];
      }
    }
    IntraOpThreads.forPositions((long) b * t, lanes);
    try (NDManager scope = model.manager().newSubManager()) {
      NDArray mask = scope.create(AttentionMasks.causal(t, 0, config().slidingWindow()),
          FusedDecoder.maskShape(1, t, t));
      float[] lp = new float[n];
      copyInto(decoder.logprobs(scope.create(ids, new Shape(b, t)),
          scope.create(rows, new Shape(n)), scope.create(targets, new Shape(n)), mask, scope),
          lp);
      k = 0;
      for (int r : batch) {
        out[r] = Arrays.copyOfRange(lp, k, k + responses.get(r).length);
        k += responses.get(r).length;
      }
    }
  }

  /**
   * Copies a float tensor into {@code dst} through a direct view of its memory. DJL's
   * {@code toFloatArray} goes through a fresh Java byte[] and an element-wise buffer view; on a
   * (32, 512) decode output that measured 21 to 345 us a step against a few here.
   */
  private static void copyInto(NDArray a, float[] dst) {
    ((PtNDArray) a).toByteBuffer(true).asFloatBuffer().get(dst);
  }

  /**
   * Samples a continuation of every prompt, {@code batchSize} prompts at a time, left-padded,
   * with a KV cache. {@code seeds[i]} drives request i's sampler alone.
   */
  public List<Generation> generate(List<int[]> prompts, long[] seeds, GenerationParams params,
      Adapter adapter, int batchSize) {
    if (seeds.length != prompts.size()) {
      throw new IllegalArgumentException(prompts.size() + " prompts but " + seeds.length
          + " seeds");
    }
    List<Generation> out = new ArrayList<>(prompts.size());
    if (continuous) {
      try (FoldedDecoders.Lease decoder = decoders.acquire(adapter)) {
        int lanes = this.lanes;
        int rows = Math.max(1, batchSize / Math.max(1, Math.min(lanes, prompts.size())));
        for (List<Generation> part : Lanes.run(prompts.size(), lanes, (from, to) ->
            generateContinuous(decoder.decoder(), prompts.subList(from, to),
                Arrays.copyOfRange(seeds, from, to), params, rows, lanes))) {
          out.addAll(part);
        }
      }
      return out;
    }
    try (FoldedDecoders.Lease decoder = decoders.acquire(adapter)) {
      for (int start = 0; start < prompts.size(); start += batchSize) {
        int first = start;
        int end = Math.min(prompts.size(), start + batchSize);
        int lanes = this.lanes;
        for (List<Generation> part : Lanes.run(end - start, lanes, (from, to) ->
            generateBatch(decoder.decoder(), prompts.subList(first + from, first + to),
                Arrays.copyOfRange(seeds, first + from, first + to), params, lanes))) {
          out.addAll(part);
        }
      }
    }
    return out;
  }

  private List<Generation> generateBatch(FusedDecoder decoder, List<int[]> prompts, long[] seeds,
      GenerationParams params, int lanes) {
    int b = prompts.size();
    int vocab = config().vocabSize();
    int window = config().slidingWindow();
    int p = 0;
    for (int i = 0; i < b; i++) {
      int[] prompt = prompts.get(i);
      if (prompt.length == 0) {
        throw new IllegalArgumentException("prompt " + i + " is empty (start it with BOS)");
      }
      checkIds(prompt, "prompt " + i);
      p = Math.max(p, prompt.length);
    }
    if (p > config().maxPositions()) {
      throw new IllegalArgumentException("a prompt has " + p + " tokens, more than the model's "
          + config().maxPositions() + " positions");
    }
    int[] pad = new int[b];
    long[] ids = new long[b * p];
    long[] positions = new long[b * p];
    for (int r = 0; r < b; r++) {
      int[] prompt = prompts.get(r);
      pad[r] = p - prompt.length;
      for (int i = 0; i < prompt.length; i++) {
        ids[r * p + pad[r] + i] = prompt[i];
        positions[r * p + pad[r] + i] = i;
      }
    }
    Sampler[] samplers = new Sampler[b];
    List<List<Integer>> generated = new ArrayList<>();
    String[] finish = new String[b];
    for (int r = 0; r < b; r++) {
      samplers[r] = new Sampler(params, seeds[r], vocab);
      generated.add(new ArrayList<>());
    }
    // The last forward runs at position maxPositions - 1; the token it picks is kept but never
    // fed back (run.c does the same at seq_len).
    int maxSteps = Math.min(params.maxNewTokens(), config().maxPositions() - p + 1);
    double temperature = samplers[0].wantsProbabilities() ? params.temperature() : 0;
    float[] logits = new float[b * vocab]; // each step's (B, V) output, reused
    KvCache cache = null;
    try (NDManager scope = model.manager().newSubManager()) {
      int active = b;
      int slot = 0; // key slots consumed so far
      int step = 0;
      long[] stepIds = ids;
      long[] stepPos = positions;
      int t = p;
      while (active > 0 && step < maxSteps) {
        IntraOpThreads.forPositions((long) b * t, lanes);
        try (NDManager stepScope = scope.newSubManager()) {
          NDArray idArr = stepScope.create(stepIds, new Shape(b, t));
          NDArray posArr = stepScope.create(stepPos, new Shape(b, t));
          NDArray mask = stepScope.create(AttentionMasks.leftPadded(pad, t, slot, window),
              FusedDecoder.maskShape(b, t, slot + t));
          // Greedy decoding reads logits; sampling reads the softmax at the temperature,
          // computed for the whole batch inside the same call.
          NDArray out;
          if (cache == null) {
            FusedDecoder.Prefill first = decoder.prefill(idArr, posArr, mask,
                p + maxSteps - 1, temperature, stepScope);
            cache = first.cache();
            out = first.output();
          } else {
            out = decoder.step(cache, idArr, posArr, mask, slot, temperature, stepScope);
          }
          copyInto(out, logits);
        }
        slot += t;
        long[] nextIds = new long[b];
        long[] nextPos = new long[b];
        for (int r = 0; r < b; r++) {
          int pos = slot - pad[r]; // position of the token chosen now
          nextPos[r] = pos;
          if (finish[r] != null) {
            continue; // keeps feeding token 0; its outputs are never read
          }
          int tok = samplers[r].next(logits, r * vocab);
          if (params.isEos(tok)) {
            finish[r] = "eos";
            active--;
            continue;
          }
          generated.get(r).add(tok);
          nextIds[r] = tok;
          if (generated.get(r).size() >= params.maxNewTokens()) {
            finish[r] = "length";
            active--;
          } else if (pos >= config().maxPositions()) {
            finish[r] = "context";
            active--;
          }
        }
        stepIds = nextIds;
        stepPos = nextPos;
        t = 1;
        step++;
      }
    } finally {
      if (cache != null) {
        cache.close();
      }
    }
    List<Generation> out = new ArrayList<>(b);
    for (int r = 0; r < b; r++) {
      int[] toks = generated.get(r).stream().mapToInt(Integer::intValue).toArray();
      out.add(new Generation(toks, finish[r] == null ? "length" : finish[r]));
    }
    return out;
  }

  /**
   * Continuous batching: {@code rows} cache rows, each holding one request from column 0 (its
   * positions are its columns, so no padding); a request's prompt is prefilled alone into a free
   * row, then every step feeds each active row its last token at its own column. A row whose
   * request finishes takes the next prompt at once. Each request runs exactly the computation of
   * a batch of one, with masked keys beside it, so the results are those of one-at-a-time
   * generation.
   */
  private List<Generation> generateContinuous(FusedDecoder decoder, List<int[]> prompts,
      long[] seeds, GenerationParams params, int rows, int lanes) {
    int n = prompts.size();
    int vocab = config().vocabSize();
    int window = config().slidingWindow();
    int maxPositions = config().maxPositions();
    int longest = 0;
    for (int i = 0; i < n; i++) {
      int[] prompt = prompts.get(i);
      if (prompt.length == 0) {
        throw new IllegalArgumentException("prompt " + i + " is empty (start it with BOS)");
      }
      checkIds(prompt, "prompt " + i);
      if (prompt.length > maxPositions) {
        throw new IllegalArgumentException("a prompt has " + prompt.length + " tokens, more "
            + "than the model's " + maxPositions + " positions");
      }
      longest = Math.max(longest, prompt.length);
    }
    rows = Math.max(1, Math.min(rows, n));
    int capacity = (int) Math.min(maxPositions, (long) longest + params.maxNewTokens());
    int[][] generated = new int[n][];
    int[] counts = new int[n];
    String[] finish = new String[n];
    int[] request = new int[rows]; // the request in each row, -1 when free
    int[] length = new int[rows]; // tokens in the row's cache
    int[] next = new int[rows]; // the token each active row feeds next
    Sampler[] samplers = new Sampler[rows];
    Arrays.fill(request, -1);
    double temperature = params.temperature() > 0 ? params.temperature() : 0;
    float[] logits = new float[rows * vocab];
    float[] one = new float[vocab];
    int pending = 0;
    int active = 0;
    try (NDManager scope = model.manager().newSubManager();
        KvCache cache = decoder.newCache(rows, capacity)) {
      while (true) {
        // Free rows take the next prompts; a prompt whose first token already ends it frees
        // its row again at once.
        for (int r = 0; r < rows && pending < n; r++) {
          while (request[r] < 0 && pending < n) {
            int q = pending++;
            int[] prompt = prompts.get(q);
            int t = prompt.length;
            generated[q] = new int[Math.max(0, params.maxNewTokens())];
            samplers[r] = new Sampler(params, seeds[q], vocab);
            if (params.maxNewTokens() <= 0) {
              finish[q] = "length";
              continue;
            }
            IntraOpThreads.forPositions(t, lanes);
            try (NDManager stepScope = scope.newSubManager()) {
              long[] ids = new long[t];
              long[] pos = new long[t];
              for (int i = 0; i < t; i++) {
                ids[i] = prompt[i];
                pos[i] = i;
              }
              copyInto(decoder.prefillRow(cache, stepScope.create(ids, new Shape(1, t)),
                  stepScope.create(pos, new Shape(1, t)),
                  stepScope.create(AttentionMasks.causal(t, 0, window),
                      FusedDecoder.maskShape(1, t, t)), r, temperature, stepScope), one);
            }
            request[r] = q;
            length[r] = t;
            active++;
            if (!accept(samplers[r].next(one, 0), q, r, params, generated, counts, finish,
                next, length)) {
              request[r] = -1;
              active--;
            }
          }
        }
        if (active == 0) {
          break;
        }
        int span = 0;
        long[] ids = new long[rows];
        long[] pos = new long[rows];
        for (int r = 0; r < rows; r++) {
          if (request[r] >= 0) {
            ids[r] = next[r];
            pos[r] = length[r];
            span = Math.max(span, length[r] + 1);
          }
        }
        float[] mask = new float[rows * span];
        for (int r = 0; r < rows; r++) {
          for (int j = 0; j < span; j++) {
            boolean ok = request[r] >= 0 && j <= length[r]
                && (window <= 0 || length[r] - j < window);
            mask[r * span + j] = ok ? 0f : AttentionMasks.BLOCKED;
          }
        }
        IntraOpThreads.forPositions(rows, lanes);
        try (NDManager stepScope = scope.newSubManager()) {
          copyInto(decoder.stepRows(cache, stepScope.create(ids, new Shape(rows, 1)),
              stepScope.create(pos, new Shape(rows, 1)),
              stepScope.create(mask, FusedDecoder.maskShape(rows, 1, span)),
              stepScope.create(pos, new Shape(rows)), span, temperature, stepScope), logits);
        }
        for (int r = 0; r < rows; r++) {
          if (request[r] < 0) {
            continue;
          }
          length[r]++;
          if (!accept(samplers[r].next(logits, r * vocab), request[r], r, params, generated,
              counts, finish, next, length)) {
            request[r] = -1;
            active--;
          }
        }
      }
    }
    List<Generation> out = new ArrayList<>(n);
    for (int q = 0; q < n; q++) {
      out.add(new Generation(Arrays.copyOf(generated[q], counts[q]),
          finish[q] == null ? "length" : finish[q]));
    }
    return out;
  }

  /**
   * Takes the token just chosen for request {@code q} in row {@code r}, whose cache holds
   * {@code length[r]} tokens (the new token's position); false when the request is finished
   * (eos, length, or no position left to feed it at), as static generation decides.
   */
  private boolean accept(int tok, int q, int r, GenerationParams params, int[][] generated,
      int[] counts, String[] finish, int[] next, int[] length) {
    if (params.isEos(tok)) {
      finish[q] = "eos";
      return false;
    }
    generated[q][counts[q]++] = tok;
    next[r] = tok;
    if (counts[q] >= params.maxNewTokens()) {
      finish[q] = "length";
      return false;
    }
    if (length[r] >= config().maxPositions()) {
      finish[q] = "context";
      return false;
    }
    return true;
  }

  private void checkIds(int[] ids, String what) {
    int v = config().vocabSize();
    for (int i = 0; i < ids.length; i++) {
      if (ids[i] < 0 || ids[i] >= v) {
        throw new IllegalArgumentException(what + ": token " + i + " has id " + ids[i]
            + ", outside the vocabulary [0, " + v + ")");
      }
    }
  }

  @Override
  public void close() {
    decoders.close();
    model.close();
    if (tokenizer != null) {
      tokenizer.close();
    }
  }

  /** A continuation: its new token ids (eos excluded) and why it stopped (eos, length, context). */
  public record Generation(int[] tokens, String finishReason) {}
}
