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
  private volatile Precision precision = Precision.FP32;
  private final FoldedDecoders decoders;

  private LanguageModel(LlamaModel model, TextTokenizer tokenizer) {
    this.model = model;
    this.tokenizer = tokenizer;
    this.decoders = new FoldedDecoders(model);
  }

  /** Loads weights and, when present, {@code tokenizer.json}. */
  public static LanguageModel load(Path dir, Device device) {
    return load(dir, device, Precision.FP32);
  }

  /**
   * As above, its inference products in {@code precision}; in bf16 or float16 the product
   * weights are stored so and no float32 copy is kept ({@link LlamaModel#load(Path, Device,
   * Precision)}), so the precision cannot change. {@link Precision#AUTO} becomes one of
   * the three here ({@link AutoPrecision}), and {@link #precision()} says which.
   */
  public static LanguageModel load(Path dir, Device device, Precision precision) {
    LlamaModel m = LlamaModel.load(dir, device, precision);
    try {
      TextTokenizer tok = TextTokenizer.exists(dir)
          ? TextTokenizer.load(dir, m.config().bosTokenId()) : null;
      LanguageModel lm = new LanguageModel(m, tok);
      // AUTO was resolved by the load: the model's products say which way.
      lm.precision = precision == Precision.AUTO ? m.productPrecision() : precision;
      return lm;
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
   * The number format of inference products from now on ({@link Precision}; default float32).
   * Training is unaffected. Changing it remakes the kept decoders at their next use. {@link
   * Precision#AUTO} picks as a load does ({@link AutoPrecision}).
   */
  public void setPrecision(Precision precision) {
    java.util.Objects.requireNonNull(precision, "precision");
    Precision stored = model.productPrecision();
    // A model whose products are 16-bit stays so under AUTO; a float32 one picks as a load of
    // a float32 checkpoint would.
    precision = precision == Precision.AUTO && stored.half() ? stored
        : precision.resolve(model.config(), model.manager().getDevice(), false);
    if (stored.half() && precision != stored) {
      throw new IllegalStateException(model.directory() + " was loaded with its products in "
          + stored.label() + " and holds no float32 copy of them: load it again in "
          + precision.label() + " to compute in " + precision.label());
    }
    this.precision = precision;
  }

  public Precision precision() {
    return precision;
  }

  /**
   * What the inference decoders kept hold beyond the weights, and how many were made (see
   * {@link FusedDecoder}): a call with the same adapter and unchanged weights makes none.
   */
  public DecoderStats decoderStats() {
    FoldedDecoders.Stats s = decoders.stats();
    return new DecoderStats(s.builds(), model.weightBytes(), s.baseBytes(), s.adapterBytes(),
        s.adapterFolded());
  }

  /**
   * @param builds decoders made so far
   * @param weightBytes the model's weights, each stored once
   * @param baseDecoderBytes what the base's decoder holds beyond them
   * @param adapterDecoderBytes what the adapter's decoder holds (folded copies or factors)
   * @param adapterFolded whether the adapter is folded into copies of the weights
   */
  public record DecoderStats(long builds, long weightBytes, long baseDecoderBytes,
      long adapterDecoderBytes, boolean adapterFolded) {}

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
    if (adapter != null && !adapter.hasWeightDeltas()) {
      return eagerLogprobs(prompts, responses, adapter);
    }
    Integer[] order = new Integer[n];
    for (int i = 0; i < n; i++) {
      order[i] = i;
    }
    Arrays.sort(order, Comparator.comparingInt(
        (Integer i) -> -(prompts.get(i).length + responses.get(i).length)).thenComparing(i -> i));
    float[][] out = new float[n][];
    try (FoldedDecoders.Lease decoder = decoders.acquire(adapter, precision)) {
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
    IntraOpThreads.forWork(config(), (long) b * t, lanes);
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
   * with a KV cache (static batches: each runs until its longest request ends). {@code seeds[i]}
   * drives request i's sampler alone.
   */
  public List<Generation> generate(List<int[]> prompts, long[] seeds, GenerationParams params,
      Adapter adapter, int batchSize) {
    return generate(prompts, seeds, null, params, adapter, batchSize, Batching.STATIC, null);
  }

  /** How {@link #generate} groups requests. */
  public enum Batching {
    /** Batches of {@code batchSize} prompts, each run until its longest request ends. */
    STATIC,
    /**
     * {@code batchSize} cache rows; a finished request's row takes the next prompt while the
     * others decode on ({@link ContinuousBatch}). Same tokens as {@link #STATIC}.
     */
    CONTINUOUS
  }

  /** Told of each request as it ends; may be called from several threads (lanes) at once. */
  @FunctionalInterface
  public interface Finished {
    void accept(int request, Generation generation);
  }

  /**
   * {@link #generate} with each request's own token limit and a choice of batching.
   *
   * @param limits request i generates at most {@code limits[i]} tokens ({@code <=
   *     params.maxNewTokens()}); null: {@code params.maxNewTokens()} each
   * @param finished told of each request as it ends (static batches: when the batch ends), with
   *     its index in {@code prompts}; or null
   */
  public List<Generation> generate(List<int[]> prompts, long[] seeds, int[] limits,
      GenerationParams params, Adapter adapter, int batchSize, Batching batching,
      Finished finished) {
    if (seeds.length != prompts.size()) {
      throw new IllegalArgumentException(prompts.size() + " prompts but " + seeds.length
          + " seeds");
    }
    if (batchSize < 1) {
      throw new IllegalArgumentException("batch size must be at least 1, got " + batchSize);
    }
    int[] lim = limits != null ? limits.clone() : new int[prompts.size()];
    if (limits == null) {
      Arrays.fill(lim, params.maxNewTokens());
    } else if (limits.length != prompts.size()) {
      throw new IllegalArgumentException(prompts.size() + " prompts but " + limits.length
          + " token limits");
    }
    for (int i = 0; i < lim.length; i++) {
      if (lim[i] < 0 || lim[i] > params.maxNewTokens()) {
        throw new IllegalArgumentException("request " + i + ": token limit " + lim[i]
            + " outside [0, " + params.maxNewTokens() + "]");
      }
    }
    if (adapter != null && !adapter.hasWeightDeltas()) {
      List<Generation> out = eagerGenerate(prompts, seeds, lim, params, adapter);
      if (finished != null) {
        for (int i = 0; i < out.size(); i++) {
          finished.accept(i, out.get(i));
        }
      }
      return out;
    }
    if (batching == Batching.CONTINUOUS) {
      return continuous(prompts, seeds, lim, params, adapter, batchSize, finished);
    }
    List<Generation> out = new ArrayList<>(prompts.size());
    try (FoldedDecoders.Lease decoder = decoders.acquire(adapter, precision)) {
      for (int start = 0; start < prompts.size(); start += batchSize) {
        int first = start;
        int end = Math.min(prompts.size(), start + batchSize);
        int lanes = this.lanes;
        for (List<Generation> part : Lanes.run(end - start, lanes, (from, to) ->
            generateBatch(decoder.decoder(), prompts.subList(first + from, first + to),
                Arrays.copyOfRange(seeds, first + from, first + to),
                Arrays.copyOfRange(lim, first + from, first + to), params, lanes))) {
          out.addAll(part);
        }
        if (finished != null) {
          for (int i = first; i < end; i++) {
            finished.accept(i, out.get(i));
          }
        }
      }
    }
    return out;
  }

  /**
   * Continuous batching: the requests split into one contiguous part per lane, each part on
   * its own {@code ceil(batchSize / lanes)} cache rows, as a static batch splits across lanes.
   */
  private List<Generation> continuous(List<int[]> prompts, long[] seeds, int[] limits,
      GenerationParams params, Adapter adapter, int batchSize, Finished finished) {
    int n = prompts.size();
    for (int i = 0; i < n; i++) {
      int[] prompt = prompts.get(i);
      if (prompt.length == 0) {
        throw new IllegalArgumentException("prompt " + i + " is empty (start it with BOS)");
      }
      checkIds(prompt, "prompt " + i);
      if (prompt.length > config().maxPositions()) {
        throw new IllegalArgumentException("a prompt has " + prompt.length + " tokens, more "
            + "than the model's " + config().maxPositions() + " positions");
      }
    }
    int lanes = this.lanes;
    int rows = (batchSize + lanes - 1) / lanes;
    Generation[] out = new Generation[n];
    try (FoldedDecoders.Lease decoder = decoders.acquire(adapter, precision)) {
      Lanes.run(n, lanes, (from, to) -> {
        Finished report = finished == null ? null
            : (i, g) -> finished.accept(from + i, g);
        Generation[] part = new ContinuousBatch(decoder.decoder(), config(), model.manager(),
            prompts.subList(from, to), Arrays.copyOfRange(seeds, from, to),
            Arrays.copyOfRange(limits, from, to), params, lanes, report).run(rows);
        System.arraycopy(part, 0, out, from, part.length);
        return null;
      });
    }
    return new ArrayList<>(Arrays.asList(out));
  }

  private List<Generation> generateBatch(FusedDecoder decoder, List<int[]> prompts, long[] seeds,
      int[] limits, GenerationParams params, int lanes) {
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
    int maxSteps = Math.min(Arrays.stream(limits).max().orElse(0),
        config().maxPositions() - p + 1);
    double temperature = samplers[0].wantsProbabilities() ? params.temperature() : 0;
    float[] logits = new float[b * vocab]; // each step's (B, V) output, reused
    KvCache cache = null;
    int active = b;
    for (int r = 0; r < b; r++) {
      if (limits[r] == 0) { // nothing to generate: the row only pads the batch
        finish[r] = "length";
        active--;
      }
    }
    try (NDManager scope = model.manager().newSubManager()) {
      int slot = 0; // key slots consumed so far
      int step = 0;
      long[] stepIds = ids;
      long[] stepPos = positions;
      int t = p;
      while (active > 0 && step < maxSteps) {
        IntraOpThreads.forWork(config(), (long) b * t, lanes);
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
        Sampler[] picking = new Sampler[b];
        for (int r = 0; r < b; r++) {
          picking[r] = finish[r] == null ? samplers[r] : null;
        }
        int[] chosen = new int[b];
        Sampler.nextAll(picking, logits, vocab, chosen, IntraOpThreads.current());
        for (int r = 0; r < b; r++) {
          int pos = slot - pad[r]; // position of the token chosen now
          nextPos[r] = pos;
          if (finish[r] != null) {
            continue; // keeps feeding token 0; its outputs are never read
          }
          int tok = chosen[r];
          if (params.isEos(tok)) {
            finish[r] = "eos";
            active--;
            continue;
          }
          generated.get(r).add(tok);
          nextIds[r] = tok;
          if (generated.get(r).size() >= limits[r]) {
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

  // ---- adapters that cannot be folded into the weights (CA-LoRA's non-linear recovery) --------

  /**
   * The next-token log-probs {@code (T, V)} of one sequence through the eager forward of
   * {@link LlamaModel} with {@code adapter} beside the weights.
   */
  private float[] eagerLogSoftmax(int[] ids, Adapter adapter, NDManager scope) {
    int t = ids.length;
    long[] pos = new long[t];
    long[] tok = new long[t];
    for (int i = 0; i < t; i++) {
      pos[i] = i;
      tok[i] = ids[i];
    }
    IntraOpThreads.forWork(config(), t, 1);
    NDArray mask = scope.create(AttentionMasks.causal(t, 0, config().slidingWindow()),
        new Shape(1, 1, 1, t, t)); // the eager forward's (B or 1, 1, 1, T, S) layout
    NDArray hidden = model.hidden(scope.create(tok, new Shape(1, t)),
        scope.create(pos, new Shape(1, t)), mask, adapter, false);
    return model.logits(hidden).logSoftmax(-1).toFloatArray();
  }

  /**
   * {@link #logprobs} for an adapter without dense deltas: one request at a time through the
   * eager forward (no folded copy of the weights, so slower than the fused path).
   */
  private List<float[]> eagerLogprobs(List<int[]> prompts, List<int[]> responses,
      Adapter adapter) {
    int vocab = config().vocabSize();
    List<float[]> out = new ArrayList<>(prompts.size());
    for (int r = 0; r < prompts.size(); r++) {
      int[] p = prompts.get(r);
      int[] y = responses.get(r);
      int[] ids = Arrays.copyOf(p, p.length + y.length);
      System.arraycopy(y, 0, ids, p.length, y.length);
      try (NDManager scope = model.manager().newSubManager()) {
        float[] lp = eagerLogSoftmax(ids, adapter, scope);
        float[] row = new float[y.length];
        for (int i = 0; i < y.length; i++) {
          row[i] = lp[(p.length - 1 + i) * vocab + y[i]];
        }
        out.add(row);
      }
    }
    return out;
  }

  /**
   * {@link #generate} for an adapter without dense deltas: one request at a time, each step a
   * full eager forward over the sequence so far (no KV cache). Same samplers and stopping rules.
   */
  private List<Generation> eagerGenerate(List<int[]> prompts, long[] seeds, int[] limits,
      GenerationParams params, Adapter adapter) {
    int vocab = config().vocabSize();
    List<Generation> out = new ArrayList<>(prompts.size());
    for (int r = 0; r < prompts.size(); r++) {
      int[] prompt = prompts.get(r);
      if (prompt.length == 0) {
        throw new IllegalArgumentException("prompt " + r + " is empty (start it with BOS)");
      }
      checkIds(prompt, "prompt " + r);
      if (prompt.length > config().maxPositions()) {
        throw new IllegalArgumentException("a prompt has " + prompt.length + " tokens, more "
            + "than the model's " + config().maxPositions() + " positions");
      }
      Sampler sampler = new Sampler(params, seeds[r], vocab);
      int maxSteps = Math.min(limits[r], config().maxPositions() - prompt.length + 1);
      List<Integer> seq = new ArrayList<>();
      for (int id : prompt) {
        seq.add(id);
      }
      List<Integer> generated = new ArrayList<>();
      String finish = "length";
      float[] last = new float[vocab];
      for (int step = 0; step < maxSteps; step++) {
        int[] ids = seq.stream().mapToInt(Integer::intValue).toArray();
        try (NDManager scope = model.manager().newSubManager()) {
          float[] lp = eagerLogSoftmax(ids, adapter, scope);
          System.arraycopy(lp, (ids.length - 1) * vocab, last, 0, vocab);
        }
        if (sampler.wantsProbabilities()) { // softmax at the temperature, as the fused path
          double max = Double.NEGATIVE_INFINITY;
          for (float v : last) {
            max = Math.max(max, v / params.temperature());
          }
          double sum = 0;
          for (int i = 0; i < vocab; i++) {
            last[i] = (float) Math.exp(last[i] / params.temperature() - max);
            sum += last[i];
          }
          for (int i = 0; i < vocab; i++) {
            last[i] /= (float) sum;
          }
        }
        int tok = sampler.next(last, 0);
        if (params.isEos(tok)) {
          finish = "eos";
          break;
        }
        generated.add(tok);
        seq.add(tok);
        if (generated.size() >= limits[r]) {
          finish = "length";
          break;
        }
        if (seq.size() > config().maxPositions()) {
          finish = "context";
          break;
        }
      }
      out.add(new Generation(generated.stream().mapToInt(Integer::intValue).toArray(), finish));
    }
    return out;
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
