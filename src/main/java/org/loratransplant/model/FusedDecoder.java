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
 * The decoder for inference: the function of {@link LlamaModel#hidden} run as one TorchScript
 * call ({@link LlamaScript}) instead of one DJL call per op, on the model's own weights.
 *
 * <p>The weights are not copied: the model stores each layer's q, k and v as one {@code
 * (Nq + 2Nk, E)} tensor and gate and up as one {@code (2I, E)} ({@link LlamaModel.Layer}), in
 * the checkpoint's {@code (out, in)} layout, so a forward needs four products per layer on the
 * very tensors training uses. RMSNorm weights multiply the normed activations and RoPE's
 * rotate-half is applied to them (a few elementwise ops per layer, instead of folded copies of
 * the projections that doubled their memory).
 *
 * <p>An adapter with low-rank factors (LoRA, AdaLoRA) runs beside the weights, {@code
 * x @ aT @ bT} added to each adapted product (for r 8 on a 576-wide model ~3% of its FLOPs),
 * or, when the copies that would fold it into the weights take at most {@link
 * #FOLD_LIMIT_BYTES}, folded into copies of the products it touches: on tiny models the
 * per-op cost of the extra products is what counts, on real ones the memory of the copies.
 *
 * <p>The result equals {@link LlamaModel#hidden} up to float rounding (the HF and llama2.c
 * parity tests run through this class). A {@link LanguageModel} keeps the decoder of its base
 * and of the adapter used last ({@link FoldedDecoders}); {@link #ownedBytes} is what each holds
 * beyond the model's weights (in {@link Precision#BF16} or {@link Precision#F16}, the 16-bit
 * copies of the products too).
 */
public final class FusedDecoder implements AutoCloseable {
  /** The most bytes of weight copies an adapter is folded into; above, it runs beside. */
  public static final long FOLD_LIMIT_BYTES = 16L << 20;

  private final NDManager manager; // owns what this decoder made (the weights stay the model's)
  private final LlamaScript script;
  private final IValue weights; // List[Tensor] in LlamaDecoder.py's order
  private final long ownedBytes;
  private final boolean folded;
  private final Precision precision;

  private FusedDecoder(NDManager manager, List<NDArray> weights, LlamaScript script,
      long ownedBytes, boolean folded, Precision precision, List<NDArray> ownedArrays,
      FusedDecoder reuse) {
    this.manager = manager;
    this.script = script;
    IValue list = IValue.listFrom(weights.stream().map(w -> (PtNDArray) w)
        .toArray(PtNDArray[]::new));
    if (precision.half()) {
      // 16-bit copies of the product weights, made inside the script (DJL cannot make bf16
      // arrays): of this decoder's own (folded) products, and of the model's unless `reuse`
      // (the base's decoder in the same format) already holds them.
      boolean canReuse = reuse != null && reuse.precision == precision;
      boolean[] fresh = new boolean[weights.size()];
      for (int j = 0; j < fresh.length; j++) {
        NDArray wj = weights.get(j);
        fresh[j] = !canReuse || ownedArrays.stream().anyMatch(a -> a == wj);
      }
      try (list; IValue freshFlags = IValue.listFrom(fresh);
          IValue dtype = IValue.from(precision == Precision.BF16 ? 15L : 5L)) {
        // Without a decoder to reuse from every product is fresh, and `list` stands in.
        this.weights = script.run("half_products", list, canReuse ? reuse.weights : list,
            freshFlags, dtype);
      }
      ownedBytes += halfBytes(weights, fresh);
    } else {
      this.weights = list;
    }
    this.ownedBytes = ownedBytes;
    this.folded = folded;
    this.precision = precision;
  }

  /**
   * Bytes of the 16-bit copies {@code half_products} makes: the fresh ones of its products that
   * are not 16-bit already (a model loaded in bf16 or float16 has its products so, and needs no
   * copy; it cannot change format, see {@link LanguageModel#setPrecision}).
   */
  private static long halfBytes(List<NDArray> weights, boolean[] fresh) {
    long values = 0;
    for (int j = 1; j < weights.size(); j++) {
      int k = (j - 8) % 18;
      boolean product = j == 1 || (j >= 8 && (k == 2 || k == 6 || k == 10 || k == 14));
      if (product && fresh[j] && !TrainingOps.isHalf(weights.get(j))) {
        values += weights.get(j).size();
      }
    }
    return 2 * values;
  }

  /**
   * The decoder of {@code model}'s weights, with {@code adapter} (it must have {@link
   * Adapter#hasWeightDeltas}) when it is not null.
   */
  public static FusedDecoder of(LlamaModel model, Adapter adapter) {
    return of(model, adapter, Precision.FP32);
  }

  /** As above, its products in {@code precision}. */
  public static FusedDecoder of(LlamaModel model, Adapter adapter, Precision precision) {
    return of(model, adapter, precision, null);
  }

  /**
   * As above; in bf16 or float16, the model's products take the copies {@code base} (the base's
   * decoder of the same weights, or null) holds instead of making their own.
   */
  static FusedDecoder of(LlamaModel model, Adapter adapter, Precision precision,
      FusedDecoder base) {
    return of(model, adapter, LlamaScript.of(model.config(), model.manager().getDevice()), null,
        precision, base);
  }

  /**
   * As above, run by {@code script} (tests compare the oneDNN and the portable one); {@code
   * fold} true or false forces how the adapter runs, null chooses by {@link #FOLD_LIMIT_BYTES}.
   */
  static FusedDecoder of(LlamaModel model, Adapter adapter, LlamaScript script, Boolean fold) {
    return of(model, adapter, script, fold, Precision.FP32, null);
  }

  private static FusedDecoder of(LlamaModel model, Adapter adapter, LlamaScript script,
      Boolean fold, Precision precision, FusedDecoder base) {
    if (adapter != null && !adapter.hasWeightDeltas()) {
      throw new IllegalArgumentException("inference runs adapters as low-rank products, and "
          + adapter + " has none");
    }
    ModelConfig c = model.config();
    NDManager m = model.manager().newSubManager();
    try {
      int e = c.hiddenSize();
      int d = c.headDim();
      NDArray none = m.create(new float[0]); // stands for an absent bias or adapter
      List<NDArray> owned = new ArrayList<>();
      List<NDArray> layerWeights = new ArrayList<>();
      List<List<Projection>> groups = List.of(
          List.of(Projection.Q_PROJ, Projection.K_PROJ, Projection.V_PROJ),
          List.of(Projection.O_PROJ),
          List.of(Projection.GATE_PROJ, Projection.UP_PROJ),
          List.of(Projection.DOWN_PROJ));
      boolean folding = adapter != null && (fold != null ? fold
          : foldBytes(model, adapter, groups) <= FOLD_LIMIT_BYTES);
      for (int i = 0; i < c.numLayers(); i++) {
        LlamaModel.Layer layer = model.layer(i);
        layerWeights.add(layer.inputNorm());
        layerWeights.add(layer.postNorm());
        NDArray[][] stored = {{layer.qkv(), layer.qkvBias()}, {layer.o(), layer.oBias()},
            {layer.gateUp(), layer.gateUpBias()}, {layer.down(), layer.downBias()}};
        for (int gi = 0; gi < groups.size(); gi++) {
          NDArray weight = stored[gi][0];
          NDArray aT = none;
          NDArray bT = none;
          List<Adapter.LowRank> factors = adapter == null ? List.of()
              : factors(adapter, i, groups.get(gi));
          try {
            if (!factors.isEmpty() && folding) {
              weight = foldInto(m, c, weight, groups.get(gi), i, adapter);
              owned.add(weight);
            } else if (!factors.isEmpty()) {
              NDArray[] ab = stackFactors(m, c, groups.get(gi), i, adapter);
              aT = ab[0];
              bT = ab[1];
              owned.add(aT);
              owned.add(bT);
            }
          } finally {
            factors.forEach(f -> { if (f != null) f.close(); });
          }
          layerWeights.addAll(List.of(weight, orNone(stored[gi][1], none), aT, bT));
        }
      }
      NDArray[] tables = model.ropeTables();
      float[] meanColumn = new float[e];
      java.util.Arrays.fill(meanColumn, 1f / e);
      NDArray eps = m.create(new float[] {(float) c.rmsNormEps()});
      NDArray mean = m.create(meanColumn, new Shape(e, 1));
      NDArray qScale = m.create(new float[] {(float) (1.0 / Math.sqrt(d))});
      owned.addAll(List.of(eps, mean, qScale));
      List<NDArray> weights = new ArrayList<>(List.of(model.embeddingTable(), model.lmHead(),
          tables[0], tables[1], eps, mean, model.finalNorm(), qScale));
      weights.addAll(layerWeights);
      long bytes = owned.stream().mapToLong(LlamaModel::bytes).sum();
      return new FusedDecoder(m, weights, script, bytes, folding, precision, owned, base);
    } catch (RuntimeException ex) {
      m.close();
      throw ex;
    }
  }

  /** Bytes of the weights this decoder made (folded copies or stacked factors), not shared. */
  public long ownedBytes() {
    return ownedBytes;
  }

  /** The number format of the products. */
  public Precision precision() {
    return precision;
  }

  /** Whether the adapter is folded into copies of the weights (else it runs beside them). */
  public boolean folded() {
    return folded;
  }

  /** Bytes of the copies folding {@code adapter} would make: each stacked product it touches. */
  private static long foldBytes(LlamaModel model, Adapter adapter,
      List<List<Projection>> groups) {
    long bytes = 0;
    for (int i = 0; i < model.config().numLayers(); i++) {
      LlamaModel.Layer layer = model.layer(i);
      NDArray[] stored = {layer.qkv(), layer.o(), layer.gateUp(), layer.down()};
      for (int gi = 0; gi < groups.size(); gi++) {
        List<Adapter.LowRank> f = factors(adapter, i, groups.get(gi));
        if (!f.isEmpty()) {
          bytes += LlamaModel.bytes(stored[gi]);
        }
        f.forEach(x -> { if (x != null) x.close(); });
      }
    }
    return bytes;
  }

  /** The factors of the group's projections (null entries where not adapted); empty if none. */
  private static List<Adapter.LowRank> factors(Adapter adapter, int layer,
      List<Projection> group) {
    List<Adapter.LowRank> out = new ArrayList<>();
    boolean any = false;
    for (Projection p : group) {
      Adapter.LowRank f = adapter.lowRank(layer, p);
      any |= f != null;
      out.add(f);
    }
    if (!any) {
      return List.of();
    }
    return out;
  }

  /** A copy of a stacked {@code (out, in)} weight with each adapted part's delta added. */
  private static NDArray foldInto(NDManager m, ModelConfig c, NDArray weight,
      List<Projection> group, int layer, Adapter adapter) {
    NDArray copy = weight.duplicate();
    copy.attach(m);
    long at = 0;
    for (Projection p : group) {
      long rows = p.outFeatures(c);
      try (Adapter.LowRank f = adapter.lowRank(layer, p)) {
        if (f != null) {
          try (NDArray delta = f.aT().matMul(f.bT()); // (in, out)
              NDArray deltaT = delta.transpose(1, 0)) {
            NDArray part = LlamaModel.rowsOf(copy, at, rows);
            part.addi(deltaT);
            if (part != copy) {
              part.close();
            }
          }
        }
      }
      at += rows;
    }
    return copy;
  }

  /**
   * One {@code aT (in, R)} and {@code bT (R, out)} for a stacked product: the parts' factors
   * side by side in aT and block-diagonal in bT (zero where a part is not adapted), so one pair
   * of small products serves q, k and v (or gate and up).
   */
  private static NDArray[] stackFactors(NDManager m, ModelConfig c, List<Projection> group,
      int layer, Adapter adapter) {
    List<NDArray> as = new ArrayList<>();
    List<long[]> blocks = new ArrayList<>(); // rank offset, row offset
    List<NDArray> bs = new ArrayList<>();
    long rank = 0;
    long out = 0;
    long outTotal = group.stream().mapToLong(p -> p.outFeatures(c)).sum();
    try {
      for (Projection p : group) {
        Adapter.LowRank f = adapter.lowRank(layer, p);
        if (f != null) {
          as.add(f.aT());
          bs.add(f.bT());
          blocks.add(new long[] {rank, out});
          rank += f.rank();
        }
        out += p.outFeatures(c);
      }
      NDArray aT = as.size() == 1 ? as.get(0).duplicate()
          : ai.djl.ndarray.NDArrays.concat(new ai.djl.ndarray.NDList(as), 1);
      aT.attach(m);
      NDArray bT = m.zeros(new Shape(rank, outTotal));
      for (int j = 0; j < bs.size(); j++) {
        long r0 = blocks.get(j)[0];
        long c0 = blocks.get(j)[1];
        long r = bs.get(j).getShape().get(0);
        long w = bs.get(j).getShape().get(1);
        bT.set(new ai.djl.ndarray.index.NDIndex(r0 + ":" + (r0 + r) + "," + c0 + ":" + (c0 + w)),
            bs.get(j));
      }
      return new NDArray[] {aT, bT};
    } finally {
      as.forEach(NDArray::close);
      bs.forEach(NDArray::close);
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

  /** An empty cache of {@code rows} rows of {@code capacity} slots, for continuous batching. */
  KvCache newCache(int rows, int capacity) {
    try (IValue r = IValue.from((long) rows);
        IValue cap = IValue.from((long) capacity)) {
      return new KvCache(script.run("new_cache", weights, r, cap), capacity);
    }
  }

  /**
   * Runs left-padded prompts into the cache rows {@code rows} at slots {@code 0..T-1}; the
   * other rows are untouched.
   *
   * @param rows {@code (n)} int64 row indices
   * @param mask additive mask {@code (n, 1, T, 1, T)}
   * @return the last position's {@code (n, V)} logits or probabilities, as {@link #prefill}
   */
  NDArray prefillRows(KvCache cache, NDArray rows, NDArray ids, NDArray positions,
      NDArray mask, double temperature, NDManager scope) {
    if (ids.getShape().get(1) > cache.capacity()) {
      throw new IllegalStateException("the cache holds " + cache.capacity() + " slots; a "
          + "prompt needs " + ids.getShape().get(1));
    }
    try (Inputs in = new Inputs(rows, ids, positions, mask);
        IValue temp = IValue.from(temperature)) {
      return tensor(script.run("prefill_rows", weights, cache.handle(), in.get(0), in.get(1),
          in.get(2), in.get(3), temp), scope);
    }
  }

  /**
   * One token per cache row at the row's own slot: {@code ids} and {@code positions} are
   * {@code (B, 1)}, {@code slots} {@code (B)} int64, {@code mask} {@code (B, 1, 1, 1, S)} over
   * the first S slots. Returns as {@link #step}.
   */
  NDArray stepRows(KvCache cache, NDArray ids, NDArray positions, NDArray slots, NDArray mask,
      double temperature, NDManager scope) {
    if (mask.getShape().get(4) > cache.capacity()) {
      throw new IllegalStateException("the cache holds " + cache.capacity() + " slots; asked "
          + "for " + mask.getShape().get(4));
    }
    try (Inputs in = new Inputs(ids, positions, slots, mask);
        IValue temp = IValue.from(temperature)) {
      return tensor(script.run("step_rows", weights, cache.handle(), in.get(0), in.get(1),
          in.get(2), in.get(3), temp), scope);
    }
  }

  /** A new cache of {@code rows} ({@code (n)} int64) of {@code cache}, which stays open. */
  KvCache keepRows(KvCache cache, NDArray rows) {
    try (Inputs in = new Inputs(rows)) {
      return new KvCache(script.run("keep_rows", cache.handle(), in.get(0)), cache.capacity());
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

  @Override
  public void close() {
    weights.close();
    manager.close();
  }
}
