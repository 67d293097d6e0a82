package org.loratransplant.model;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.ndarray.types.SparseFormat;
import ai.djl.nn.Activation;
import ai.djl.nn.core.Embedding;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.Map;
import org.loratransplant.safetensors.Checkpoint;

/**
 * The Llama-family decoder (llama, mistral, qwen2) on DJL NDArrays, computed in fp32.
 *
 * <p>Shapes: B batch, T positions (S = T keys), E hidden, H query heads,
 * K key/value heads, G = H / K, D head dim, V vocab. One forward is ~20 ops per layer; the work
 * that is the same on every call (RoPE tables, the rotate-half matrix, transposed weights, the
 * attention scale folded into the query tables) is done once here.
 */
public final class LlamaModel implements AutoCloseable {
  private final ModelConfig config;
  private final Path directory;
  private final NDManager manager;
  private final NDArray embedding; // (V, E)
  private final NDArray lmHeadT; // (E, V)
  private final NDArray finalNorm; // (E)
  private final Layer[] layers;
  private final NDArray qCos; // (P, D) cos table scaled by 1/sqrt(D)
  private final NDArray qSin;
  private final NDArray kCos; // (P, D)
  private final NDArray kSin;
  private final NDArray rotateHalf; // (D, D): x @ R == cat(-x2, x1)
  private final NDArray eps;
  private final NDArray meanColumn; // (E, 1) filled with 1/E
  private volatile long weightsVersion;

  private record Layer(NDArray inputNorm, NDArray postNorm, Map<Projection, Linear> linears) {}

  private LlamaModel(ModelConfig config, Path directory, NDManager manager, NDArray embedding,
      NDArray lmHeadT, NDArray finalNorm, Layer[] layers) {
    this.config = config;
    this.directory = directory;
    this.manager = manager;
    this.embedding = embedding;
    this.lmHeadT = lmHeadT;
    this.finalNorm = finalNorm;
    this.layers = layers;
    int d = config.headDim();
    int p = config.maxPositions();
    float[][] table = ropeTables(config);
    float[] cos = table[0];
    float[] sin = table[1];
    this.kCos = manager.create(cos, new Shape(p, d));
    this.kSin = manager.create(sin, new Shape(p, d));
    float scale = (float) (1.0 / Math.sqrt(d));
    this.qCos = kCos.mul(scale);
    this.qSin = kSin.mul(scale);
    float[] r = new float[d * d];
    for (int j = 0; j < d / 2; j++) {
      r[(j + d / 2) * d + j] = -1f; // out[j] = -x[j + D/2]
      r[j * d + j + d / 2] = 1f; // out[j + D/2] = x[j]
    }
    this.rotateHalf = manager.create(r, new Shape(d, d));
    this.eps = manager.create((float) config.rmsNormEps());
    float[] col = new float[config.hiddenSize()];
    java.util.Arrays.fill(col, 1f / config.hiddenSize());
    this.meanColumn = manager.create(col, new Shape(config.hiddenSize(), 1));
  }

  /**
   * RoPE's {@code (P, D)} cos and sin tables, each frequency written to both halves of a head as
   * rotate-half pairs them.
   */
  static float[][] ropeTables(ModelConfig config) {
    int d = config.headDim();
    int p = config.maxPositions();
    float[] inv = RopeScaling.inverseFrequencies(d, config.ropeTheta(), config.ropeScaling());
    float[] cos = new float[p * d];
    float[] sin = new float[p * d];
    for (int pos = 0; pos < p; pos++) {
      for (int i = 0; i < d / 2; i++) {
        // HF multiplies float32 position by float32 inv_freq, then takes cos/sin in float32.
        float angle = (float) pos * inv[i];
        float c = (float) Math.cos(angle);
        float s = (float) Math.sin(angle);
        cos[pos * d + i] = c;
        cos[pos * d + i + d / 2] = c;
        sin[pos * d + i] = s;
        sin[pos * d + i + d / 2] = s;
      }
    }
    return new float[][] {cos, sin};
  }

  /** Loads the model in {@code dir} onto {@code device}; errors name the file and tensor. */
  public static LlamaModel load(Path dir, Device device) {
    ModelConfig config = ModelConfig.load(dir);
    NDManager manager = NDManager.newBaseManager(device);
    try (Checkpoint ckpt = Checkpoint.open(dir)) {
      WeightLoader w = new WeightLoader(ckpt, manager);
      int e = config.hiddenSize();
      NDArray embedding = w.load("model.embed_tokens.weight", config.vocabSize(), e);
      NDArray lmHeadT;
      if (config.tieWordEmbeddings() || !ckpt.names().contains("lm_head.weight")) {
        if (!config.tieWordEmbeddings()) {
          throw new ModelConfigException(dir + ": tensor 'lm_head.weight' is missing and "
              + "tie_word_embeddings is false in config.json");
        }
        lmHeadT = manager.create(transpose(embedding.toFloatArray(), config.vocabSize(), e),
            new Shape(e, config.vocabSize()));
      } else {
        lmHeadT = w.loadTransposed("lm_head.weight", config.vocabSize(), e);
      }
      NDArray finalNorm = w.load("model.norm.weight", e);
      Layer[] layers = new Layer[config.numLayers()];
      for (int i = 0; i < layers.length; i++) {
        Map<Projection, Linear> linears = new EnumMap<>(Projection.class);
        for (Projection p : Projection.values()) {
          String prefix = p.keyPrefix(i);
          NDArray wt = w.loadTransposed(prefix + ".weight", p.outFeatures(config),
              p.inFeatures(config));
          NDArray bias = p.hasBias(config) ? w.load(prefix + ".bias", p.outFeatures(config)) : null;
          linears.put(p, new Linear(wt, bias));
        }
        layers[i] = new Layer(
            w.load("model.layers." + i + ".input_layernorm.weight", e),
            w.load("model.layers." + i + ".post_attention_layernorm.weight", e),
            linears);
      }
      return new LlamaModel(config, dir, manager, embedding, lmHeadT, finalNorm, layers);
    } catch (RuntimeException ex) {
      manager.close();
      throw ex;
    }
  }

  public ModelConfig config() {
    return config;
  }

  /**
   * Counts in-place changes of the frozen weights (a LoRA merged or unmerged), so derived copies
   * such as {@link FusedDecoder} know when they are stale.
   */
  public long weightsVersion() {
    return weightsVersion;
  }

  /** Records that the frozen weights were changed in place. */
  public void weightsChanged() {
    weightsVersion++;
  }

  NDArray lmHeadT() {
    return lmHeadT;
  }

  NDArray finalNorm() {
    return finalNorm;
  }

  NDArray inputNorm(int layer) {
    return layers[layer].inputNorm();
  }

  NDArray postNorm(int layer) {
    return layers[layer].postNorm();
  }

  public Path directory() {
    return directory;
  }

  public NDManager manager() {
    return manager;
  }

  /** The frozen projection of a layer (LoRA merging updates its weight in place). */
  public Linear linear(int layer, Projection projection) {
    return layers[layer].linears().get(projection);
  }

  /**
   * The decoder's final hidden states (after the final RMSNorm).
   *
   * @param ids token ids {@code (B, T)} int64
   * @param positions RoPE positions {@code (B, T)} int64
   * @param mask additive attention mask {@code (B or 1, 1, 1, T, T)}: 0 where a query may see a
   *     key, a large negative number where not
   * @param adapter LoRA updates, or {@code null} for the base model
   * @param training enables adapter dropout
   * @return {@code (B, T, E)}
   */
  public NDArray hidden(NDArray ids, NDArray positions, NDArray mask, Adapter adapter,
      boolean training) {
    return hidden(ids, positions, mask, adapter, training, null);
  }

  /**
   * As above, with {@code embeddingNoise} {@code (B, T, E)} added to the token embeddings when
   * not null (NEFTune adds uniform noise there during training).
   */
  public NDArray hidden(NDArray ids, NDArray positions, NDArray mask, Adapter adapter,
      boolean training, NDArray embeddingNoise) {
    return forward(ids, positions, mask, adapter, training, embeddingNoise, null);
  }

  /**
   * The final hidden states and the outputs of the chosen decoder layers, on the same
   * (differentiable when {@code training} and a gradient is recorded) path as {@link #hidden}:
   * {@code last} equals what {@code hidden} returns for the same arguments.
   */
  public record HiddenStates(NDArray last, Map<Integer, NDArray> layers) {
    /** Layer {@code i}'s output {@code (B, T, E)}; fails naming the layers that were kept. */
    public NDArray layer(int i) {
      NDArray h = layers.get(i);
      if (h == null) {
        throw new IllegalArgumentException("layer " + i + " was not requested; kept layers: "
            + layers.keySet());
      }
      return h;
    }
  }

  /**
   * As {@link #hidden(NDArray, NDArray, NDArray, Adapter, boolean, NDArray)}, also returning
   * the residual stream after each decoder layer in {@code layers} (0-based, before the final
   * RMSNorm; the last layer's output normed is {@code last}).
   */
  public HiddenStates hiddenStates(NDArray ids, NDArray positions, NDArray mask, Adapter adapter,
      boolean training, NDArray embeddingNoise, java.util.Set<Integer> layers) {
    for (int i : layers) {
      if (i < 0 || i >= this.layers.length) {
        throw new IllegalArgumentException("layer " + i + " does not exist: the model has "
            + this.layers.length + " layers (0.." + (this.layers.length - 1) + ")");
      }
    }
    Map<Integer, NDArray> kept = new java.util.TreeMap<>();
    NDArray last = forward(ids, positions, mask, adapter, training, embeddingNoise, kept);
    kept.keySet().retainAll(layers);
    return new HiddenStates(last, java.util.Collections.unmodifiableMap(kept));
  }

  /** The forward pass; when {@code layerOutputs} is not null every layer's output goes there. */
  private NDArray forward(NDArray ids, NDArray positions, NDArray mask, Adapter adapter,
      boolean training, NDArray embeddingNoise, Map<Integer, NDArray> layerOutputs) {
    long b = ids.getShape().get(0);
    long t = ids.getShape().get(1);
    int h = config.numHeads();
    int k = config.numKvHeads();
    int g = config.groupSize();
    int d = config.headDim();
    NDArray x = Embedding.embedding(ids, embedding, SparseFormat.DENSE).singletonOrThrow();
    if (embeddingNoise != null) {
      x = x.add(embeddingNoise);
    }
    // (B, T, 1, D): broadcast over heads
    NDArray qc = lookup(positions, qCos).expandDims(2);
    NDArray qs = lookup(positions, qSin).expandDims(2);
    NDArray kc = lookup(positions, kCos).expandDims(2);
    NDArray ks = lookup(positions, kSin).expandDims(2);
    for (int i = 0; i < layers.length; i++) {
      Layer layer = layers[i];
      Map<Projection, Linear> lin = layer.linears();
      NDArray hn = rmsNorm(x, layer.inputNorm()); // (B, T, E)
      // RoPE on the contiguous (B, T, heads, D) projections, where rotate-half is one plain
      // matrix product over (B*T*heads, D); a (B, H, T, D) view made it a broadcast batched
      // product, the costliest op of a decode step.
      NDArray q = rope(project(i, Projection.Q_PROJ, lin, hn, adapter, training), b, t, h, qc, qs)
          .transpose(0, 2, 1, 3); // (B, H, T, D)
      NDArray key = rope(project(i, Projection.K_PROJ, lin, hn, adapter, training), b, t, k, kc,
          ks).transpose(0, 2, 1, 3); // (B, K, T, D)
      NDArray v = project(i, Projection.V_PROJ, lin, hn, adapter, training)
          .reshape(b, t, k, d).transpose(0, 2, 1, 3); // (B, K, T, D)
      long s = key.getShape().get(2);
      // Grouped-query attention without repeating k/v: fold the G query heads of each kv head
      // into the query-time axis. (B, H, T, D) -> (B, K, G*T, D)
      NDArray scores = q.reshape(b, k, g * t, d).matMul(key.transpose(0, 1, 3, 2)); // (B,K,G*T,S)
      // In inference the fresh score tensor takes the mask in place (one allocation less);
      // autograd needs the out-of-place form.
      NDArray masked = training ? scores.reshape(b, k, g, t, s).add(mask)
          : scores.reshape(b, k, g, t, s).addi(mask);
      NDArray probs = masked.softmax(-1);
      NDArray attn = probs.reshape(b, k, g * t, s).matMul(v) // (B, K, G*T, D)
          .reshape(b, h, t, d).transpose(0, 2, 1, 3).reshape(b, t, (long) h * d);
      x = residual(x, project(i, Projection.O_PROJ, lin, attn, adapter, training), training);
      NDArray hm = rmsNorm(x, layer.postNorm());
      NDArray gate = project(i, Projection.GATE_PROJ, lin, hm, adapter, training);
      NDArray up = project(i, Projection.UP_PROJ, lin, hm, adapter, training);
      NDArray act = gate.mul(Activation.sigmoid(gate)).mul(up); // SiLU(gate) * up
      x = residual(x, project(i, Projection.DOWN_PROJ, lin, act, adapter, training), training);
      if (layerOutputs != null) {
        layerOutputs.put(i, x); // never modified in place later: residual() adds into the new y
      }
    }
    return rmsNorm(x, finalNorm);
  }

  /** {@code x + y}, in place on y (a fresh projection output) when no gradient is needed. */
  private static NDArray residual(NDArray x, NDArray y, boolean training) {
    return training ? x.add(y) : y.addi(x);
  }

  /** {@code (..., E) -> (..., V)} logits. */
  public NDArray logits(NDArray hidden) {
    return hidden.matMul(lmHeadT);
  }

  /** The token embedding table {@code (V, E)} (NEFTune adds noise after this lookup). */
  public NDArray embeddingTable() {
    return embedding;
  }

  private static NDArray project(int layer, Projection p, Map<Projection, Linear> lin, NDArray x,
      Adapter adapter, boolean training) {
    NDArray y = lin.get(p).apply(x);
    if (adapter != null) {
      NDArray delta = adapter.delta(layer, p, x, training);
      if (delta != null) {
        y = y.add(delta);
      }
    }
    return y;
  }

  /** {@code (B, T, heads*D) -> (B, T, heads, D)} rotated: {@code x*cos + rotate_half(x)*sin}. */
  private NDArray rope(NDArray proj, long b, long t, int heads, NDArray cos, NDArray sin) {
    int d = config.headDim();
    NDArray x = proj.reshape(b, t, heads, d);
    NDArray rotated = x.reshape(b * t * heads, d).matMul(rotateHalf).reshape(b, t, heads, d);
    return x.mul(cos).add(rotated.mul(sin));
  }

  private NDArray rmsNorm(NDArray x, NDArray weight) {
    // The mean of squares as a product with a (E, 1) column of 1/E: PyTorch's mean divides by
    // a wrapped scalar, which cost a dtype conversion and ~30 us per call here.
    NDArray ms = x.square().matMul(meanColumn).add(eps);
    return x.div(ms.sqrt()).mul(weight);
  }

  private static NDArray lookup(NDArray positions, NDArray table) {
    return Embedding.embedding(positions, table, SparseFormat.DENSE).singletonOrThrow();
  }

  @Override
  public void close() {
    manager.close();
  }

  @Override
  public String toString() {
    return config.modelType() + " model at " + directory + " (" + config.numLayers() + " layers, d"
        + config.hiddenSize() + ", vocab " + config.vocabSize() + ")";
  }

  /** Reads tensors from a checkpoint, checking each shape against the config. */
  private record WeightLoader(Checkpoint ckpt, NDManager manager) {
    NDArray load(String name, long... shape) {
      float[] data = read(name, shape);
      return manager.create(data, new Shape(shape));
    }

    /** Loads an {@code (out, in)} weight and stores it as {@code (in, out)}. */
    NDArray loadTransposed(String name, long out, long in) {
      float[] data = read(name, out, in);
      // Transposed here, in Java: a transposed view cloned by PyTorch keeps the view's strides,
      // and a strided weight made every projection matmul measurably slower.
      return manager.create(transpose(data, (int) out, (int) in), new Shape(in, out));
    }

    private float[] read(String name, long... shape) {
      if (!ckpt.names().contains(name)) {
        throw new ModelConfigException(ckpt.dir() + ": tensor '" + name + "' is missing");
      }
      long[] actual = ckpt.info(name).dims();
      if (!Arrays.equals(actual, shape)) {
        throw new ModelConfigException(ckpt.fileOf(name) + ": tensor '" + name + "' has shape "
            + Arrays.toString(actual) + " but config.json implies " + Arrays.toString(shape));
      }
      float[] data = ckpt.readFloat32(name);
      String bad = org.loratransplant.safetensors.FiniteCheck.problem(name, data);
      if (bad != null) {
        throw new ModelConfigException(ckpt.fileOf(name) + ": " + bad);
      }
      return data;
    }
  }

  /** Row-major {@code (rows, cols)} to row-major {@code (cols, rows)}. */
  static float[] transpose(float[] a, int rows, int cols) {
    float[] t = new float[a.length];
    for (int r = 0; r < rows; r++) {
      for (int c = 0; c < cols; c++) {
        t[c * rows + r] = a[r * cols + c];
      }
    }
    return t;
  }

  public static NDArray int64(NDManager m, long[] values, long... shape) {
    return m.create(values, new Shape(shape)).toType(DataType.INT64, false);
  }
}
