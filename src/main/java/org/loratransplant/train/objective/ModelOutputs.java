package org.loratransplant.train.objective;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import java.util.Map;
import java.util.Set;
import org.loratransplant.model.Adapter;
import org.loratransplant.model.LlamaModel;

/**
 * One forward pass over a batch: the logits {@code (B, T, V)} and the outputs {@code (B, T, E)}
 * of the decoder layers an objective asked for, with the scope they live in (objectives create
 * their constants there, so everything is freed with the micro-step). A forward run here keeps
 * its final hidden states and makes the logits only when asked ({@link #logits}), so that an
 * objective that needs a few positions can run the LM head on those alone
 * ({@link #targetLogprobs}): with a 49152-token vocabulary the head and its softmax are a third
 * of a training step, and a prompt's positions carry no loss.
 */
public final class ModelOutputs {
  private final LlamaModel model; // null when built from logits
  private final NDArray hidden; // (B, T, E) after the final norm, or null
  private NDArray logits; // made on first use when hidden is set
  private final Map<Integer, NDArray> layers;
  private final NDManager scope;

  /** Outputs whose logits {@code (B, T, V)} are already computed. */
  public ModelOutputs(NDArray logits, Map<Integer, NDArray> layers, NDManager scope) {
    this(null, null, logits, layers, scope);
  }

  private ModelOutputs(LlamaModel model, NDArray hidden, NDArray logits,
      Map<Integer, NDArray> layers, NDManager scope) {
    this.model = model;
    this.hidden = hidden;
    this.logits = logits;
    this.layers = layers;
    this.scope = scope;
  }

  /** The logits {@code (B, T, V)}, made at the first call when the forward ran here. */
  public NDArray logits() {
    if (logits == null) {
      logits = model.logits(hidden);
    }
    return logits;
  }

  /** The layer outputs kept, by layer index. */
  public Map<Integer, NDArray> layers() {
    return layers;
  }

  /** Layer {@code i}'s output; fails naming the layers that were computed. */
  public NDArray layer(int i) {
    NDArray h = layers.get(i);
    if (h == null) {
      throw new IllegalArgumentException("the forward pass kept no output of layer " + i
          + " (kept: " + layers.keySet() + "); declare it in Objective.studentLayers()");
    }
    return h;
  }

  /** Where the batch's arrays live. */
  public NDManager scope() {
    return scope;
  }

  /**
   * The log-probability {@code (N,)} of {@code targets[n]} at the flattened position
   * {@code rows[n]} (row-major over {@code (B, T)}). With the hidden states at hand only those
   * positions go through the LM head and its softmax (differentiably: the rows are picked by an
   * embedding lookup into the hidden states, whose backward scatters into them); otherwise the
   * logits are read there.
   */
  public NDArray targetLogprobs(long[] rows, long[] targets) {
    NDArray idx = scope.create(rows);
    NDArray picked;
    if (logits == null && hidden != null) {
      picked = model.logits(hiddenAt(idx)); // (N, V)
    } else {
      long v = logits().getShape().get(2);
      picked = ai.djl.nn.core.Embedding.embedding(idx, logits().reshape(-1, v),
          ai.djl.ndarray.types.SparseFormat.DENSE).singletonOrThrow();
    }
    return picked.logSoftmax(-1)
        .gather(scope.create(targets, new Shape(targets.length, 1)), -1)
        .reshape(targets.length);
  }

  /**
   * The final hidden states {@code (N, E)} at the flattened positions {@code idx}, by an
   * embedding lookup (differentiable: its backward scatters into the hidden states).
   */
  private NDArray hiddenAt(NDArray idx) {
    long e = hidden.getShape().get(2);
    return ai.djl.nn.core.Embedding.embedding(idx, hidden.reshape(-1, e),
        ai.djl.ndarray.types.SparseFormat.DENSE).singletonOrThrow();
  }

  /** Logit values per chunk of {@link #weightedNll}: 16 M floats, 64 MB (341 rows at 49152). */
  static final long CHUNK_VALUES = 16L << 20;

  /**
   * {@code -sum_n weights[n] * log p(targets[n] | position rows[n]) / denominator}, with the
   * gradient reaching the hidden states (and through them the adapter) as autograd would give
   * it, but without ever holding the {@code (N, V)} logits: the LM head, its softmax and the
   * gradient {@code (softmax - onehot) * w / denominator} are computed per chunk of {@link
   * #CHUNK_VALUES} logits, each chunk's hidden-state gradient {@code dlogits @ lmHead} kept and
   * the chunk freed (the "fused linear cross-entropy" of Liger-Kernel, in plain ops). The value
   * returned is the loss; its graph is {@code h . dH - stop(h . dH)}, whose gradient is dH.
   * Autograd's form held the logits, their log-softmax and, in backward, their gradient: three
   * {@code (N, V)} float tensors, 1.2 GB for 16 x 128 positions at 49152 tokens. When the logits
   * were made already, or the head is trained, it is {@link #targetLogprobs} summed.
   */
  public NDArray weightedNll(long[] rows, long[] targets, float[] weights, double denominator) {
    return weightedNll(rows, targets, weights, denominator, CHUNK_VALUES);
  }

  /** As above, at most {@code chunkValues} logits at a time (tests force several chunks). */
  NDArray weightedNll(long[] rows, long[] targets, float[] weights, double denominator,
      long chunkValues) {
    float d = (float) denominator;
    if (hidden == null || logits != null || !model.headFrozen()) {
      return targetLogprobs(rows, targets).mul(scope.create(weights)).sum().neg().div(d);
    }
    NDArray h = hiddenAt(scope.create(rows));
    NDArray detached = h.stopGradient();
    int n = rows.length;
    long v = model.config().vocabSize();
    int chunk = (int) Math.max(1, Math.min(n, chunkValues / v));
    double sum = 0;
    ai.djl.ndarray.NDList grads = new ai.djl.ndarray.NDList();
    for (int from = 0; from < n; from += chunk) {
      int to = Math.min(n, from + chunk);
      try (NDManager tmp = scope.newSubManager()) {
        NDArray hc = detached.get(new ai.djl.ndarray.index.NDIndex("{}:{}", from, to));
        hc.attach(tmp); // what is computed from it lands in tmp, freed with the chunk
        NDArray logp = model.logits(hc).logSoftmax(-1); // (C, V)
        long[] t = java.util.Arrays.copyOfRange(targets, from, to);
        NDArray w = tmp.create(java.util.Arrays.copyOfRange(weights, from, to));
        sum += logp.gather(tmp.create(t, new Shape(to - from, 1)), -1).reshape(to - from)
            .mul(w).sum().getFloat();
        NDArray dlogits = logp.exp().sub(tmp.create(t).oneHot((int) v))
            .mul(w.div(d).reshape(to - from, 1));
        NDArray dh = model.logitsBackward(dlogits);
        dh.attach(scope);
        grads.add(dh);
      }
    }
    NDArray dH = grads.size() == 1 ? grads.get(0) : ai.djl.ndarray.NDArrays.concat(grads, 0);
    NDArray surrogate = h.mul(dH).sum();
    return surrogate.sub(surrogate.stopGradient()).add((float) (-sum / d));
  }

  /**
   * Runs {@code model} (+ {@code adapter}, may be null) on right-padded ids {@code (rows, length)}
   * with a causal mask, as the trainer always has: padding sits after every real token, so it
   * changes no real position. With no {@code layers} this is exactly the trainer's old forward.
   */
  public static ModelOutputs run(LlamaModel model, Adapter adapter, long[] ids, int rows,
      int length, NDManager scope, NDArray embeddingNoise, boolean training, Set<Integer> layers) {
    long[] positions = new long[rows * length];
    for (int r = 0; r < rows; r++) {
      for (int i = 0; i < length; i++) {
        positions[r * length + i] = i;
      }
    }
    float[] mask = new float[length * length];
    for (int i = 0; i < length; i++) {
      for (int j = i + 1; j < length; j++) {
        mask[i * length + j] = -1e9f;
      }
    }
    NDArray idArr = scope.create(ids, new Shape(rows, length));
    NDArray posArr = scope.create(positions, new Shape(rows, length));
    NDArray maskArr = scope.create(mask, new Shape(1, 1, 1, length, length));
    if (layers.isEmpty()) {
      NDArray hidden = model.hidden(idArr, posArr, maskArr, adapter, training, embeddingNoise);
      return new ModelOutputs(model, hidden, null, Map.of(), scope);
    }
    LlamaModel.HiddenStates h = model.hiddenStates(idArr, posArr, maskArr, adapter, training,
        embeddingNoise, layers);
    return new ModelOutputs(model, h.last(), null, h.layers(), scope);
  }

  /** {@link #run} on a {@link TokenBatch}. */
  public static ModelOutputs run(LlamaModel model, Adapter adapter, TokenBatch batch,
      NDManager scope, NDArray embeddingNoise, boolean training, Set<Integer> layers) {
    return run(model, adapter, batch.ids(), batch.rows(), batch.length(), scope, embeddingNoise,
        training, layers);
  }
}
