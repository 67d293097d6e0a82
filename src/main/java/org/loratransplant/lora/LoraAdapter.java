package org.loratransplant.lora;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.norm.Dropout;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.loratransplant.model.Adapter;
import org.loratransplant.model.Linear;
import org.loratransplant.model.LlamaModel;
import org.loratransplant.model.ModelConfig;
import org.loratransplant.model.Projection;

/**
 * A LoRA on a Llama-family model: for each adapted projection {@code W0 (out, in)}, the update
 * {@code scaling * B A x} with {@code A (r, in)} and {@code B (out, r)}. Stored transposed,
 * {@code aT (in, r)} and {@code bT (r, out)}, so the forward is {@code x @ aT @ bT} with no
 * transposes; PEFT I/O converts.
 */
public final class LoraAdapter implements Adapter, AutoCloseable {
  private final LoraConfig config;
  private final ModelConfig base;
  private final NDManager manager;
  private final Map<Key, Pair> pairs;
  private final NDArray scaling;
  private boolean mergedInto;
  private final java.util.concurrent.atomic.AtomicLong version =
      new java.util.concurrent.atomic.AtomicLong();

  /** A projection of a layer. */
  public record Key(int layer, Projection projection) implements Comparable<Key> {
    @Override
    public int compareTo(Key o) {
      return layer != o.layer ? Integer.compare(layer, o.layer)
          : projection.compareTo(o.projection);
    }
  }

  /** The trainable pair of one projection. */
  public record Pair(NDArray aT, NDArray bT) {}

  LoraAdapter(LoraConfig config, ModelConfig base, NDManager manager, Map<Key, Pair> pairs) {
    this.config = config;
    this.base = base;
    this.manager = manager;
    this.pairs = Collections.unmodifiableMap(new LinkedHashMap<>(pairs));
    this.scaling = manager.create((float) config.scaling());
  }

  /**
   * A fresh adapter as PEFT initialises one: A Kaiming-uniform with a = sqrt(5), which is
   * U(-1/sqrt(in), 1/sqrt(in)); B zero, so the adapted model starts equal to the base. Values come
   * from a seeded Java RNG in a fixed order, so the same seed gives the same bytes anywhere.
   */
  public static LoraAdapter create(LoraConfig config, ModelConfig base, NDManager parent,
      long seed) {
    config.checkAgainst(base);
    NDManager m = parent.newSubManager();
    SplittableRandom rng = new SplittableRandom(seed);
    Map<Key, Pair> pairs = new LinkedHashMap<>();
    for (int l = 0; l < base.numLayers(); l++) {
      if (!config.adapts(l)) {
        continue;
      }
      for (Projection p : Projection.values()) {
        if (!config.targetModules().contains(p)) {
          continue;
        }
        int in = p.inFeatures(base);
        int out = p.outFeatures(base);
        double bound = 1.0 / Math.sqrt(in);
        float[] a = new float[in * config.r()]; // row-major aT (in, r)
        for (int row = 0; row < config.r(); row++) { // PEFT's A is (r, in): fill in that order
          for (int col = 0; col < in; col++) {
            a[col * config.r() + row] = (float) ((rng.nextDouble() * 2 - 1) * bound);
          }
        }
        NDArray aT = m.create(a, new Shape(in, config.r()));
        NDArray bT = m.zeros(new Shape(config.r(), out));
        pairs.put(new Key(l, p), new Pair(aT, bT));
      }
    }
    return new LoraAdapter(config, base, m, pairs);
  }

  /** One projection's values in PEFT's layout: A {@code (r, in)} and B {@code (out, r)}, row-major. */
  public record Matrices(float[] a, float[] b) {}

  /**
   * An adapter with given values (for adapters computed rather than trained, e.g. the
   * training-free transfers). {@code values} must hold every target module of every adapted layer
   * of {@code base}, each with the shapes {@code config.r()} and the base imply; errors name the
   * module.
   */
  public static LoraAdapter of(LoraConfig config, ModelConfig base, NDManager parent,
      Map<Key, Matrices> values) {
    config.checkAgainst(base);
    NDManager m = parent.newSubManager();
    try {
      Map<Key, Pair> pairs = new LinkedHashMap<>();
      for (int l = 0; l < base.numLayers(); l++) {
        if (!config.adapts(l)) {
          continue;
        }
        for (Projection p : config.targetModules()) {
          Key k = new Key(l, p);
          Matrices v = values.get(k);
          if (v == null) {
            throw new IllegalArgumentException("no values for layer " + l + " " + p.moduleName());
          }
          int in = p.inFeatures(base);
          int out = p.outFeatures(base);
          if (v.a().length != config.r() * in || v.b().length != out * config.r()) {
            throw new IllegalArgumentException("layer " + l + " " + p.moduleName() + ": A has "
                + v.a().length + " values and B " + v.b().length + ", need " + config.r() + "x"
                + in + " and " + out + "x" + config.r());
          }
          NDArray aT = m.create(transposed(v.a(), config.r(), in), new Shape(in, config.r()));
          NDArray bT = m.create(transposed(v.b(), out, config.r()), new Shape(config.r(), out));
          pairs.put(k, new Pair(aT, bT));
        }
      }
      return new LoraAdapter(config, base, m, pairs);
    } catch (RuntimeException e) {
      m.close();
      throw e;
    }
  }

  /**
   * Row-major {@code (rows, cols)} to row-major {@code (cols, rows)}. Parameters are transposed
   * here rather than with {@code transpose().duplicate()}, whose copy keeps the view's strides: a
   * strided parameter breaks autograd's gradient layout contract (AdaLoRA read a stale gradient
   * buffer and went NaN), and every adapter read from disk may be trained further (CA-LoRA).
   */
  static float[] transposed(float[] a, int rows, int cols) {
    float[] t = new float[a.length];
    for (int r = 0; r < rows; r++) {
      for (int c = 0; c < cols; c++) {
        t[c * rows + r] = a[r * cols + c];
      }
    }
    return t;
  }

  public LoraConfig config() {
    return config;
  }

  /** The architecture of the base model this adapter fits. */
  public ModelConfig baseConfig() {
    return base;
  }

  public Map<Key, Pair> pairs() {
    return pairs;
  }

  /** Every trainable array, in a fixed order (layer, projection, A then B). */
  public List<NDArray> parameters() {
    List<NDArray> out = new ArrayList<>();
    pairs.keySet().stream().sorted().forEach(k -> {
      out.add(pairs.get(k).aT());
      out.add(pairs.get(k).bT());
    });
    return out;
  }

  /** Number of trainable values. */
  public long parameterCount() {
    return parameters().stream().mapToLong(a -> a.getShape().size()).sum();
  }

  @Override
  public NDArray delta(int layer, Projection projection, NDArray x, boolean training) {
    Pair p = activePair(layer, projection);
    if (p == null) {
      return null;
    }
    NDArray in = training && config.dropout() > 0
        ? Dropout.dropout(x, (float) config.dropout(), true).singletonOrThrow() : x;
    return in.matMul(p.aT()).matMul(p.bT()).mul(scaling);
  }

  @Override
  public boolean hasWeightDeltas() {
    return true;
  }

  /** A hash of every A and B value (and whether this adapter is merged into its base). */
  @Override
  public long weightsFingerprint() {
    long h = 1125899906842597L;
    for (NDArray p : parameters()) {
      for (float v : p.toFloatArray()) {
        h = 31 * h + Float.floatToRawIntBits(v);
      }
    }
    return mergedInto ? ~h : h;
  }

  /** {@code aT} and {@code scaling * bT}. */
  @Override
  public LowRank lowRank(int layer, Projection projection) {
    Pair p = activePair(layer, projection);
    if (p == null) {
      return null;
    }
    return new LowRank(p.aT().duplicate(), p.bT().mul((float) config.scaling()));
  }

  @Override
  public long weightsVersion() {
    return version.get();
  }

  @Override
  public void weightsChanged() {
    version.incrementAndGet();
  }

  /** The pair adapting a projection, or null; an adapter merged into the base cannot run. */
  private Pair activePair(int layer, Projection projection) {
    Pair p = pairs.get(new Key(layer, projection));
    if (p != null && mergedInto) {
      throw new IllegalStateException("this adapter is merged into the base weights; run the "
          + "model without it, or unmerge first");
    }
    return p;
  }

  /** Adds {@code scaling * B A} into the base weights (inference with no adapter overhead). */
  public void merge(LlamaModel model) {
    if (mergedInto) {
      throw new IllegalStateException("adapter is already merged");
    }
    apply(model, 1);
    mergedInto = true;
    weightsChanged();
  }

  /** Subtracts what {@link #merge} added. */
  public void unmerge(LlamaModel model) {
    if (!mergedInto) {
      throw new IllegalStateException("adapter is not merged");
    }
    apply(model, -1);
    mergedInto = false;
    weightsChanged();
  }

  public boolean isMerged() {
    return mergedInto;
  }

  private void apply(LlamaModel model, int sign) {
    for (Map.Entry<Key, Pair> e : pairs.entrySet()) {
      Linear lin = model.linear(e.getKey().layer(), e.getKey().projection());
      try (NDArray delta = e.getValue().aT().matMul(e.getValue().bT())) { // (in, out)
        NDArray scaled = delta.mul((float) (sign * config.scaling()));
        lin.weightT().addi(scaled);
        scaled.close();
      }
    }
    model.weightsChanged();
  }

  @Override
  public void close() {
    manager.close();
  }

  @Override
  public String toString() {
    return "LoRA r=" + config.r() + " alpha=" + config.alpha() + " on " + pairs.size()
        + " projections";
  }
}
