package org.loratransplant.lora.adalora;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.norm.Dropout;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.loratransplant.lora.LoraAdapter.Key;
import org.loratransplant.model.Adapter;
import org.loratransplant.model.ModelConfig;

/**
 * An AdaLoRA: for each adapted projection the SVD-form update {@code dW = P diag(lambda) Q}
 * ({@code P = lora_B (out, r)}, {@code lambda = lora_E (r)}, {@code Q = lora_A (r, in)}), applied
 * as PEFT applies it: {@code x Q^T diag(lambda) P^T * alpha / (ranknum + 1e-5)}, where ranknum is
 * the module's rank when it was created ({@code init_r}: PEFT keeps it when a rank_pattern
 * shrinks the module on load, so pruning never rescales what is kept).
 *
 * <p>Every module holds {@code init_r} triplet slots; a pruned triplet has lambda 0 and mask
 * false (so loading a shrunk PEFT module puts its rows back in their slots, and the forward is
 * the same). Stored transposed for a transpose-free forward: {@code aT (in, r)}, {@code bT
 * (r, out)}.
 */
public final class AdaLoraAdapter implements Adapter, AutoCloseable {
  private final AdaLoraConfig config;
  private final ModelConfig base;
  private final NDManager manager;
  private final Map<Key, Triplets> modules;
  private final java.util.concurrent.atomic.AtomicLong version =
      new java.util.concurrent.atomic.AtomicLong();

  /**
   * One module's triplets.
   *
   * @param kept which of the {@code init_r} slots are kept (PEFT's rank_pattern entry)
   * @param ranknum the rank PEFT divides by
   */
  public record Triplets(NDArray aT, NDArray e, NDArray bT, boolean[] kept, float ranknum) {
    /** Number of kept triplets. */
    public int rank() {
      int n = 0;
      for (boolean k : kept) {
        n += k ? 1 : 0;
      }
      return n;
    }

    /** {@code alpha / (ranknum + 1e-5)} in float32, as PEFT computes it. */
    float scale(double alpha) {
      return (float) alpha / (ranknum + 1e-5f);
    }
  }

  AdaLoraAdapter(AdaLoraConfig config, ModelConfig base, NDManager manager,
      Map<Key, Triplets> modules) {
    this.config = config;
    this.base = base;
    this.manager = manager;
    this.modules = Collections.unmodifiableMap(new LinkedHashMap<>(modules));
  }

  /**
   * An adapter from PEFT-orientation values per module: {@code a (r, in)}, {@code e (r)},
   * {@code b (out, r)} with {@code r = init_r}, row-major; pruned slots are those with
   * {@code kept[i] == false} (their lambda is forced to 0).
   */
  public static AdaLoraAdapter of(AdaLoraConfig config, ModelConfig base, NDManager parent,
      Map<Key, float[][]> values, Map<Key, boolean[]> kept, Map<Key, Float> ranknum) {
    NDManager m = parent.newSubManager();
    try {
      Map<Key, Triplets> out = new LinkedHashMap<>();
      int r = config.initR();
      for (Map.Entry<Key, float[][]> v : values.entrySet()) {
        Key k = v.getKey();
        int in = k.projection().inFeatures(base);
        int outF = k.projection().outFeatures(base);
        float[] a = v.getValue()[0];
        float[] e = v.getValue()[1].clone();
        float[] b = v.getValue()[2];
        if (a.length != r * in || e.length != r || b.length != outF * r) {
          throw new IllegalArgumentException("layer " + k.layer() + " "
              + k.projection().moduleName() + ": need A " + r + "x" + in + ", E " + r + ", B "
              + outF + "x" + r);
        }
        boolean[] keep = kept.getOrDefault(k, all(r));
        for (int i = 0; i < r; i++) {
          if (!keep[i]) {
            e[i] = 0f;
          }
        }
        // transposed here, not with transpose().duplicate(): a strided parameter breaks
        // autograd's gradient layout contract, and training then read a stale gradient buffer
        // (NaN after ~100 steps, once a native crash)
        NDArray aT = m.create(AdaLoraTrainer.transpose(a, r, in), new Shape(in, r));
        NDArray bT = m.create(AdaLoraTrainer.transpose(b, outF, r), new Shape(r, outF));
        out.put(k, new Triplets(aT, m.create(e, new Shape(r)), bT, keep.clone(),
            ranknum.getOrDefault(k, (float) r)));
      }
      return new AdaLoraAdapter(config, base, m, out);
    } catch (RuntimeException e) {
      m.close();
      throw e;
    }
  }

  /**
   * A fresh adapter as PEFT initialises one: lambda 0 (so the adapted model starts equal to the
   * base), A and B normal with std 0.02, from a seeded Java RNG in a fixed order.
   */
  public static AdaLoraAdapter create(AdaLoraConfig config, ModelConfig base, NDManager parent,
      long seed) {
    java.util.SplittableRandom rng = new java.util.SplittableRandom(seed);
    Map<Key, float[][]> values = new LinkedHashMap<>();
    int r = config.initR();
    for (int l = 0; l < base.numLayers(); l++) {
      if (!config.adapts(l)) {
        continue;
      }
      for (org.loratransplant.model.Projection p : config.targetModules()) {
        float[] a = new float[r * p.inFeatures(base)];
        float[] b = new float[p.outFeatures(base) * r];
        for (int i = 0; i < a.length; i++) {
          a[i] = (float) (rng.nextGaussian() * 0.02);
        }
        for (int i = 0; i < b.length; i++) {
          b[i] = (float) (rng.nextGaussian() * 0.02);
        }
        values.put(new Key(l, p), new float[][] {a, new float[r], b});
      }
    }
    return of(config, base, parent, values, Map.of(), Map.of());
  }

  static boolean[] all(int r) {
    boolean[] b = new boolean[r];
    java.util.Arrays.fill(b, true);
    return b;
  }

  public AdaLoraConfig config() {
    return config;
  }

  public ModelConfig baseConfig() {
    return base;
  }

  public Map<Key, Triplets> modules() {
    return modules;
  }

  /** Every trainable array (A, E, B per module, in key order). */
  public List<NDArray> parameters() {
    List<NDArray> out = new ArrayList<>();
    modules.keySet().stream().sorted().forEach(k -> {
      Triplets t = modules.get(k);
      out.add(t.aT());
      out.add(t.e());
      out.add(t.bT());
    });
    return out;
  }

  /** Values of kept triplets only (what PEFT saves and counts after pruning). */
  public long keptParameterCount() {
    long n = 0;
    for (Map.Entry<Key, Triplets> e : modules.entrySet()) {
      int in = e.getKey().projection().inFeatures(base);
      int out = e.getKey().projection().outFeatures(base);
      n += (long) e.getValue().rank() * (in + out + 1);
    }
    return n;
  }

  @Override
  public NDArray delta(int layer, org.loratransplant.model.Projection projection, NDArray x,
      boolean training) {
    Triplets t = modules.get(new Key(layer, projection));
    if (t == null) {
      return null;
    }
    NDArray in = training && config.dropout() > 0
        ? Dropout.dropout(x, (float) config.dropout(), true).singletonOrThrow() : x;
    return in.matMul(t.aT()).mul(t.e()).matMul(t.bT()).mul(t.scale(config.alpha()));
  }

  @Override
  public boolean hasWeightDeltas() {
    return true;
  }

  /** {@code aT diag(lambda)} and {@code scale * bT}. */
  @Override
  public LowRank lowRank(int layer, org.loratransplant.model.Projection projection) {
    Triplets t = modules.get(new Key(layer, projection));
    if (t == null) {
      return null;
    }
    return new LowRank(t.aT().mul(t.e()), t.bT().mul(t.scale(config.alpha())));
  }

  @Override
  public long weightsVersion() {
    return version.get();
  }

  @Override
  public void weightsChanged() {
    version.incrementAndGet();
  }

  @Override
  public long weightsFingerprint() {
    long h = 1469598103934665603L;
    for (NDArray p : parameters()) {
      for (float v : p.toFloatArray()) {
        h = 31 * h + Float.floatToRawIntBits(v);
      }
    }
    return h;
  }

  @Override
  public void close() {
    manager.close();
  }

  @Override
  public String toString() {
    int kept = modules.values().stream().mapToInt(Triplets::rank).sum();
    return "AdaLoRA init_r=" + config.initR() + " alpha=" + config.alpha() + " on "
        + modules.size() + " projections, " + kept + " triplets kept";
  }
}
