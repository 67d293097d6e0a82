package org.loratransplant.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.engine.PtNDManager;
import ai.djl.pytorch.jni.IValue;
import java.util.ArrayList;
import java.util.List;

/**
 * The decoder for inference: the function of {@link LlamaModel#hidden} with its weights
 * rearranged once so that a forward needs fewer, larger ops, run as one TorchScript call
 * ({@link LlamaScript}) instead of one DJL call per op.
 *
 * <p>What is folded, per layer:
 * <ul>
 *   <li>q, k, v and the rotate-half of q and k are one product with a {@code (2(Nq+Nk)+Nk, E)}
 *       weight (rotate-half is a signed permutation, so its columns are exact); RoPE is then
 *       {@code qk * cos + qkRotated * sin} over q and k together, the attention scale
 *       {@code 1/sqrt(D)} folded into q's part of the tables;</li>
 *   <li>gate and up are one product;</li>
 *   <li>each RMSNorm weight is folded into the rows of the projection that follows it (the final
 *       one into the LM head), so a norm is only {@code x / sqrt(mean(x^2) + eps)};</li>
 *   <li>an adapter with dense deltas (LoRA) is added into the copied weights.</li>
 * </ul>
 *
 * <p>The result equals {@link LlamaModel#hidden} up to float rounding (the HF and llama2.c
 * parity tests run through this class). A {@link LanguageModel} keeps the copy of its base and
 * of the adapter used last ({@link FoldedDecoders}); each holds every projection again, in the
 * {@code (out, in)} layout the decoder multiplies by, so it doubles the projections' memory.
 */
public final class FusedDecoder implements AutoCloseable {
  private final NDManager manager; // owns the fused arrays (the embedding stays the model's)
  private final LlamaScript script;
  private final IValue weights; // List[Tensor] in LlamaDecoder.py's order

  private FusedDecoder(NDManager manager, List<NDArray> weights,
      LlamaScript script) {
    this.manager = manager;
    this.script = script;
    this.weights = IValue.listFrom(weights.stream().map(w -> (PtNDArray) w)
        .toArray(PtNDArray[]::new));
  }

  /**
   * Fuses {@code model}'s weights, with {@code adapter}'s dense deltas added when it is not null
   * (it must have {@link Adapter#hasWeightDeltas}).
   */
  public static FusedDecoder of(LlamaModel model, Adapter adapter) {
    return of(model, adapter, LlamaScript.of(model.config(), model.manager().getDevice()));
  }

  /** As above, run by {@code script} (tests compare the oneDNN and the portable one). */
  static FusedDecoder of(LlamaModel model, Adapter adapter, LlamaScript script) {
    if (adapter != null && !adapter.hasWeightDeltas()) {
      throw new IllegalArgumentException("inference folds adapters into the weights, and "
          + adapter + " has no dense weight deltas");
    }
    ModelConfig c = model.config();
    NDManager m = model.manager().newSubManager();
    try {
      int e = c.hiddenSize();
      int d = c.headDim();
      int nq = c.numHeads() * d;
      int nk = c.numKvHeads() * d;
      NDArray none = m.create(new float[0]); // stands for an absent bias
      List<NDArray> layerWeights = new ArrayList<>();
      for (int i = 0; i < c.numLayers(); i++) {
        float[] inNorm = model.inputNorm(i).toFloatArray();
        float[] wq = weight(model, adapter, i, Projection.Q_PROJ);
        float[] wk = weight(model, adapter, i, Projection.K_PROJ);
        float[] wv = weight(model, adapter, i, Projection.V_PROJ);
        scaleRows(wq, inNorm);
        scaleRows(wk, inNorm);
        scaleRows(wv, inNorm);
        float[] qkv = concatColumns(e, new float[][] {wq, wk, rotateHalf(wq, e, d),
            rotateHalf(wk, e, d), wv}, new int[] {nq, nk, nq, nk, nk});
        NDArray qkvBias = none;
        if (Projection.Q_PROJ.hasBias(c)) {
          float[] bq = model.linear(i, Projection.Q_PROJ).bias().toFloatArray();
          float[] bk = model.linear(i, Projection.K_PROJ).bias().toFloatArray();
          float[] bv = model.linear(i, Projection.V_PROJ).bias().toFloatArray();
          qkvBias = m.create(concatColumns(1, new float[][] {bq, bk, rotateHalf(bq, 1, d),
              rotateHalf(bk, 1, d), bv}, new int[] {nq, nk, nq, nk, nk}));
        }
        float[] postNorm = model.postNorm(i).toFloatArray();
        float[] wg = weight(model, adapter, i, Projection.GATE_PROJ);
        float[] wu = weight(model, adapter, i, Projection.UP_PROJ);
        scaleRows(wg, postNorm);
        scaleRows(wu, postNorm);
        int inter = c.intermediateSize();
        NDArray gateUpBias = none;
        if (Projection.GATE_PROJ.hasBias(c)) {
          gateUpBias = m.create(concatColumns(1, new float[][] {
              model.linear(i, Projection.GATE_PROJ).bias().toFloatArray(),
              model.linear(i, Projection.UP_PROJ).bias().toFloatArray()},
              new int[] {inter, inter}));
        }
        layerWeights.addAll(List.of(
            outIn(m, qkv, e, 2 * (nq + nk) + nk), qkvBias,
            outIn(m, weight(model, adapter, i, Projection.O_PROJ), nq, e),
            orNone(model.linear(i, Projection.O_PROJ).bias(), none),
            outIn(m, concatColumns(e, new float[][] {wg, wu}, new int[] {inter, inter}), e,
                2 * inter), gateUpBias,
            outIn(m, weight(model, adapter, i, Projection.DOWN_PROJ), inter, e),
            orNone(model.linear(i, Projection.DOWN_PROJ).bias(), none)));
      }
      float[] head = model.lmHeadT().toFloatArray();
      scaleRows(head, model.finalNorm().toFloatArray());
      NDArray lmHead = outIn(m, head, e, c.vocabSize());
      NDArray[] tables = ropeTables(c, m);
      float[] meanColumn = new float[e];
      java.util.Arrays.fill(meanColumn, 1f / e);
      List<NDArray> weights = new ArrayList<>(List.of(model.embeddingTable(), lmHead,
          tables[0], tables[1], m.create(new float[] {(float) c.rmsNormEps()}),
          m.create(meanColumn, new Shape(e, 1))));
      weights.addAll(layerWeights);
      return new FusedDecoder(m, weights, script);
    } catch (RuntimeException ex) {
      m.close();
      throw ex;
    }
  }

  /**
   * Teacher-forced log-probs of chosen positions of a right-padded batch whose rows sit at
   * positions 0..T-1: entry n is the log-prob of {@code targets[n]} after the flattened
   * position {@code rows[n]} (row r, position i is {@code r * T + i}). Only those positions go
   * through the LM head and its softmax, so prompts and padding cost no vocabulary work.
   *
   * @param ids {@code (B, T)} int64
   * @param rows {@code (N)} int64 flattened positions
   * @param targets {@code (N)} int64
   * @param mask additive mask {@code (1 or B, 1, T, 1, T)} ({@link #maskShape})
   * @param scope owns the result, {@code (N)}
   */
  public NDArray logprobs(NDArray ids, NDArray rows, NDArray targets, NDArray mask,
      NDManager scope) {
    try (Inputs in = new Inputs(ids, rows, targets, mask)) {
      return tensor(script.run("score", weights, in.get(0), in.get(1), in.get(2), in.get(3)),
          scope);
    }
  }

  /**
   * Runs prompts through a fresh cache of {@code capacity} key slots, written from slot 0.
   *
   * @param mask additive mask {@code (B, 1, T, 1, T)}
   * @param temperature above 0: return {@code softmax(logits / temperature)} instead of logits
   * @return the last position's {@code (B, V)} logits or probabilities, and the cache
   */
  public Prefill prefill(NDArray ids, NDArray positions, NDArray mask, int capacity,
      double temperature, NDManager scope) {
    try (Inputs in = new Inputs(ids, positions, mask);
        IValue cap = IValue.from((long) capacity);
        IValue temp = IValue.from(temperature);
        IValue out = script.run("prefill", weights, in.get(0), in.get(1), in.get(2), cap,
            temp)) {
      IValue[] pair = out.toIValueTuple(); // (logits, cache)
      return new Prefill(tensor(pair[0], scope), new KvCache(pair[1], capacity));
    }
  }

  /**
   * Runs the new positions at slots {@code slot..slot+T-1} of {@code cache}, which it extends in
   * place; {@code mask} is {@code (B, 1, T, 1, slot + T)}. Returns as {@link #prefill} does.
   */
  public NDArray step(KvCache cache, NDArray ids, NDArray positions, NDArray mask, int slot,
      double temperature, NDManager scope) {
    long t = ids.getShape().get(1);
    if (slot + t > cache.capacity()) {
      throw new IllegalStateException("the cache holds " + cache.capacity() + " slots; asked "
          + "for " + (slot + t));
    }
    try (Inputs in = new Inputs(ids, positions, mask);
        IValue at = IValue.from((long) slot);
        IValue temp = IValue.from(temperature)) {
      return tensor(script.run("step", weights, cache.handle(), in.get(0), in.get(1),
          in.get(2), at, temp), scope);
    }
  }

  /** What {@link #prefill} returns. */
  public record Prefill(NDArray output, KvCache cache) {}

  /** Additive masks in this class's layout, from {@link AttentionMasks}' {@code (B, T, S)}. */
  static Shape maskShape(long rows, long t, long s) {
    return new Shape(rows, 1, t, 1, s);
  }

  private static NDArray tensor(IValue value, NDManager scope) {
    try (value) {
      return value.toTensor((PtNDManager) scope);
    }
  }

  /** Arrays handed to the script as IValues, released after the call. */
  private static final class Inputs implements AutoCloseable {
    private final IValue[] values;

    Inputs(NDArray... arrays) {
      values = new IValue[arrays.length];
      for (int i = 0; i < arrays.length; i++) {
        values[i] = IValue.from((PtNDArray) arrays[i]);
      }
    }

    IValue get(int i) {
      return values[i];
    }

    @Override
    public void close() {
      for (IValue v : values) {
        v.close();
      }
    }
  }

  private static NDArray orNone(NDArray bias, NDArray none) {
    return bias == null ? none : bias;
  }

  /** The transposed {@code (in, out)} weight of a projection plus the adapter's delta. */
  private static float[] weight(LlamaModel model, Adapter adapter, int layer, Projection p) {
    float[] w = model.linear(layer, p).weightT().toFloatArray();
    if (adapter != null) {
      try (NDArray delta = adapter.weightDelta(layer, p)) {
        if (delta != null) {
          float[] dw = delta.toFloatArray();
          for (int j = 0; j < w.length; j++) {
            w[j] += dw[j];
          }
        }
      }
    }
    return w;
  }

  /**
   * A row-major {@code (in, out)} matrix as the {@code (out, in)} array the decoder multiplies
   * by ({@code x @ w.t()}, or oneDNN's linear, which takes that layout).
   */
  private static NDArray outIn(NDManager m, float[] inOut, int in, int out) {
    return m.create(LlamaModel.transpose(inOut, in, out), new Shape(out, in));
  }

  /** Multiplies row r of a row-major {@code (rows, cols)} matrix by {@code scale[r]}. */
  private static void scaleRows(float[] w, float[] scale) {
    int cols = w.length / scale.length;
    for (int r = 0; r < scale.length; r++) {
      for (int j = 0; j < cols; j++) {
        w[r * cols + j] *= scale[r];
      }
    }
  }

  /**
   * {@code w @ R} for a row-major {@code (rows, heads*D)} matrix, R rotate-half within each head:
   * column j of a head becomes {@code -x[j + D/2]} for j < D/2 and {@code x[j - D/2]} after.
   */
  private static float[] rotateHalf(float[] w, int rows, int d) {
    int cols = w.length / rows;
    float[] out = new float[w.length];
    for (int r = 0; r < rows; r++) {
      for (int head = 0; head < cols / d; head++) {
        int base = r * cols + head * d;
        for (int j = 0; j < d / 2; j++) {
          out[base + j] = -w[base + j + d / 2];
          out[base + j + d / 2] = w[base + j];
        }
      }
    }
    return out;
  }

  /** Side-by-side concatenation of row-major matrices with {@code rows} rows. */
  private static float[] concatColumns(int rows, float[][] parts, int[] widths) {
    int total = 0;
    for (int w : widths) {
      total += w;
    }
    float[] out = new float[rows * total];
    for (int r = 0; r < rows; r++) {
      int at = r * total;
      for (int p = 0; p < parts.length; p++) {
        System.arraycopy(parts[p], r * widths[p], out, at, widths[p]);
        at += widths[p];
      }
    }
    return out;
  }

  /** {@code (P, Nq + Nk)} cos and sin tables for [q heads | k heads], q's part scaled. */
  private static NDArray[] ropeTables(ModelConfig c, NDManager m) {
    float[][] base = LlamaModel.ropeTables(c);
    int d = c.headDim();
    int p = c.maxPositions();
    int h = c.numHeads();
    int width = (h + c.numKvHeads()) * d;
    float scale = (float) (1.0 / Math.sqrt(d));
    NDArray[] out = new NDArray[2];
    for (int which = 0; which < 2; which++) {
      float[] src = base[which];
      float[] table = new float[p * width];
      for (int pos = 0; pos < p; pos++) {
        for (int head = 0; head < width / d; head++) {
          for (int j = 0; j < d; j++) {
            float v = src[pos * d + j];
            table[pos * width + head * d + j] = head < h ? v * scale : v;
          }
        }
      }
      out[which] = m.create(table, new Shape(p, width));
    }
    return out;
  }

  @Override
  public void close() {
    weights.close();
    manager.close();
  }
}
