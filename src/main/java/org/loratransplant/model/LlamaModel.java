package org.loratransplant.model;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.ndarray.types.SparseFormat;
import ai.djl.nn.core.Embedding;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import org.loratransplant.safetensors.Checkpoint;
import org.loratransplant.safetensors.DType;

/**
 * The Llama-family decoder (llama, mistral, qwen2) on DJL NDArrays, computed in fp32 (its
 * products in bf16 with float32 accumulation when loaded in {@link Precision#BF16}).
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
  private final NDArray lmHead; // (V, E): the embedding itself when tied
  private final NDArray lmHeadT; // (E, V), a transposed view of lmHead
  private final NDArray finalNorm; // (E)
  private final Layer[] layers;
  private final NDArray qCos; // (P, D) cos table scaled by 1/sqrt(D)
  private final NDArray qSin; // (P, D) sin table scaled by 1/sqrt(D), its first half negated
  private final NDArray kCos; // (P, D)
  private final NDArray kSin; // (P, D) sin table
  private final NDArray kSinSigned; // (P, D) sin table, its first half negated (see rope)
  private final NDArray eps;
  private final NDArray meanColumn; // (E, 1) filled with 1/E
  private volatile long weightsVersion;
  private final Precision products; // FP32, BF16 or F16: the products' weights as stored

  private final long loadedBytes;
  /**
   * The checkpoint mappings that weights alias ({@link WeightReader}): held here because DJL's
   * tensor does not hold the buffer, and an unreachable mapping is unmapped under it.
   */
  private final List<java.nio.MappedByteBuffer> mappings;

  /**
   * A decoder layer's weights as the checkpoint stores them, {@code (out, in)}, with q, k and v
   * stacked into one tensor and gate and up into another (the fused products of {@link
   * FusedDecoder}); each {@link Linear} is a view of its rows, so there is one copy of each
   * weight. Absent biases are null.
   */
  record Layer(NDArray inputNorm, NDArray postNorm, NDArray qkv, NDArray qkvBias, NDArray o,
      NDArray oBias, NDArray gateUp, NDArray gateUpBias, NDArray down, NDArray downBias,
      Map<Projection, Linear> linears) {}

  private LlamaModel(ModelConfig config, Path directory, NDManager manager, NDArray embedding,
      NDArray lmHead, NDArray finalNorm, Layer[] layers, long loadedBytes,
      List<java.nio.MappedByteBuffer> mappings, Precision products) {
    this.mappings = mappings;
    this.products = products;
    this.config = config;
    this.directory = directory;
    this.manager = manager;
    this.embedding = embedding;
    this.lmHead = lmHead;
    this.lmHeadT = lmHead.transpose(1, 0);
    this.loadedBytes = loadedBytes;
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
    float[] signed = sin.clone();
    for (int pos = 0; pos < p; pos++) {
      for (int i = 0; i < d / 2; i++) {
        signed[pos * d + i] = -signed[pos * d + i];
      }
    }
    this.kSinSigned = manager.create(signed, new Shape(p, d));
    this.qSin = kSinSigned.mul(scale);
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

  /**
   * Loads the model in {@code dir} onto {@code device}; errors name the file and tensor. The
   * weights go from the file into libtorch memory ({@link WeightReader}) in float32.
   */
  public static LlamaModel load(Path dir, Device device) {
    return load(dir, device, Precision.FP32);
  }

  /**
   * As above; in {@link Precision#BF16} the products' weights (every layer's q|k|v, o, gate|up
   * and down, and an untied LM head) are stored in bf16 instead, with no float32 copy: a BF16
   * checkpoint's values as they are (mapped like float32 ones where they can be), any other
   * rounded to nearest even as {@link FusedDecoder}'s bf16 copies are. A BF16 embedding stays
   * bf16 too (looking a row up is exact); a float32 one, the norms and biases stay float32.
   * Such a model computes its products in bf16 with float32 accumulation on every path,
   * training's included ({@link #bf16Products}). {@link Precision#F16} is the same in float16:
   * an F16 checkpoint's values as they are, any other converted, and refused naming the tensor
   * when a value lies beyond float16's range ({@link #productPrecision}).
   */
  public static LlamaModel load(Path dir, Device device, Precision precision) {
    boolean map = mapFiles() && device.equals(Device.cpu()); // a bad value fails before work
    ModelConfig config = ModelConfig.load(dir);
    NDManager manager = NDManager.newBaseManager(device);
    try (Checkpoint ckpt = Checkpoint.open(dir)) {
      String probe = Projection.Q_PROJ.keyPrefix(0) + ".weight";
      Precision products = precision.resolve(config, device,
          ckpt.has(probe) && ckpt.info(probe).dtype() == DType.F16);
      // Read on the CPU, then moved whole when the model lives elsewhere.
      NDManager cpu = device.equals(Device.cpu()) ? manager
          : NDManager.newBaseManager(Device.cpu());
      WeightReader w = null;
      try {
        // The checks of each tensor are small reductions: across threads, on a busy machine,
        // they measured 5x the whole read (OpenMP workers waiting for cores); on one, a pass.
        IntraOpThreads.single();
        w = new WeightReader(ckpt, cpu, IntraOpThreads.cores(), map);
        int e = config.hiddenSize();
        // In bf16 a BF16 embedding is kept as stored (its rows become float32 exactly when
        // looked up; tied, it is the bf16 LM head too), in float16 an F16 one; any other is
        // float32, as stored.
        List<String> embed = List.of("model.embed_tokens.weight");
        NDArray embedding = product(w, embed, new long[] {config.vocabSize()}, e, manager,
            products.half() && w.allOf(embed, stored(products)) ? products : Precision.FP32);
        NDArray lmHead;
        if (config.tieWordEmbeddings() || !ckpt.names().contains("lm_head.weight")) {
          if (!config.tieWordEmbeddings()) {
            throw new ModelConfigException(dir + ": tensor 'lm_head.weight' is missing and "
                + "tie_word_embeddings is false in config.json");
          }
          lmHead = embedding;
        } else {
          lmHead = product(w, List.of("lm_head.weight"), new long[] {config.vocabSize()}, e,
              manager, products);
        }
        NDArray finalNorm = onDevice(w.read("model.norm.weight", e), manager);
        Layer[] layers = new Layer[config.numLayers()];
        for (int i = 0; i < layers.length; i++) {
          layers[i] = loadLayer(w, config, i, manager, products);
        }
        return new LlamaModel(config, dir, manager, embedding, lmHead, finalNorm, layers,
            w.bytesRead(), w.mappings(), products);
      } finally {
        if (w != null) {
          w.close();
        }
        if (cpu != manager) {
          cpu.close();
        }
      }
    } catch (RuntimeException ex) {
      manager.close();
      throw ex;
    }
  }

  private static Layer loadLayer(WeightReader w, ModelConfig c, int i, NDManager target,
      Precision products) {
    int e = c.hiddenSize();
    List<Projection> qkvParts = List.of(Projection.Q_PROJ, Projection.K_PROJ, Projection.V_PROJ);
    List<Projection> guParts = List.of(Projection.GATE_PROJ, Projection.UP_PROJ);
    NDArray qkv = weight(w, c, i, qkvParts, target, products);
    NDArray qkvBias = Projection.Q_PROJ.hasBias(c)
        ? onDevice(stack(w, c, i, qkvParts, ".bias"), target) : null;
    NDArray o = weight(w, c, i, List.of(Projection.O_PROJ), target, products);
    NDArray oBias = Projection.O_PROJ.hasBias(c)
        ? onDevice(stack(w, c, i, List.of(Projection.O_PROJ), ".bias"), target) : null;
    NDArray gateUp = weight(w, c, i, guParts, target, products);
    NDArray gateUpBias = Projection.GATE_PROJ.hasBias(c)
        ? onDevice(stack(w, c, i, guParts, ".bias"), target) : null;
    NDArray down = weight(w, c, i, List.of(Projection.DOWN_PROJ), target, products);
    NDArray downBias = Projection.DOWN_PROJ.hasBias(c)
        ? onDevice(stack(w, c, i, List.of(Projection.DOWN_PROJ), ".bias"), target) : null;
    Map<Projection, Linear> linears = new EnumMap<>(Projection.class);
    views(c, linears, qkvParts, qkv, qkvBias);
    views(c, linears, List.of(Projection.O_PROJ), o, oBias);
    views(c, linears, guParts, gateUp, gateUpBias);
    views(c, linears, List.of(Projection.DOWN_PROJ), down, downBias);
    return new Layer(
        onDevice(w.read("model.layers." + i + ".input_layernorm.weight", e), target),
        onDevice(w.read("model.layers." + i + ".post_attention_layernorm.weight", e), target),
        qkv, qkvBias, o, oBias, gateUp, gateUpBias, down, downBias, linears);
  }

  /** The biases of {@code parts} of layer {@code i}, stacked. */
  private static NDArray stack(WeightReader w, ModelConfig c, int i, List<Projection> parts,
      String suffix) {
    List<String> names = parts.stream().map(p -> p.keyPrefix(i) + suffix).toList();
    return w.stack(names, parts.stream().mapToLong(p -> p.outFeatures(c)).toArray());
  }

  /** The weights of {@code parts} of layer {@code i}, stacked along their rows, on target. */
  private static NDArray weight(WeightReader w, ModelConfig c, int i, List<Projection> parts,
      NDManager target, Precision products) {
    List<String> names = parts.stream().map(p -> p.keyPrefix(i) + ".weight").toList();
    return product(w, names, parts.stream().mapToLong(p -> p.outFeatures(c)).toArray(),
        parts.get(0).inFeatures(c), target, products);
  }

  /**
   * A product's weight, the tensors {@code names} ({@code (rows[j], in)}) stacked, on target:
   * float32, or in bf16 or float16 ({@link #load(Path, Device, Precision)}). The bf16
   * conversions run where the model lives, after the move (DJL moves float16 and float32
   * tensors, not bf16 ones); the float16 ones on the CPU, so half the bytes move.
   */
  private static NDArray product(WeightReader w, List<String> names, long[] rows, long in,
      NDManager target, Precision products) {
    if (products == Precision.FP32) {
      return onDevice(w.stack(names, rows, in), target);
    }
    if (products == Precision.F16) {
      return onDevice(w.allOf(names, DType.F16) ? w.stackF16(names, rows, in)
          : w.stackConverted(names, rows, x -> toF16(x, w, names), in), target);
    }
    boolean kept = w.allBf16(names);
    if (!kept && target.getDevice().equals(Device.cpu())) {
      return onDevice(w.stackRoundedBf16(names, rows, in), target);
    }
    try (NDArray source = onDevice(kept ? w.stackBf16Bits(names, rows, in)
        : w.stackRead(names, rows, in), target)) {
      // The view shares the storage of `source`, whose handle alone is closed here.
      return kept ? TrainingOps.bf16Bits(source) : TrainingOps.bf16Round(source);
    }
  }

  /** The checkpoint dtype a product format keeps as stored: BF16 or F16. */
  private static DType stored(Precision products) {
    return products == Precision.BF16 ? DType.BF16 : DType.F16;
  }

  /** Largest finite float16 value. */
  private static final float F16_MAX = 65504f;

  /**
   * {@code x} in float16, refused naming the tensors when a value lies beyond float16's range
   * (it would become infinite); the float16 rounding of the rest is to nearest even.
   */
  private static NDArray toF16(NDArray x, WeightReader w, List<String> names) {
    float max;
    // Two reductions rather than abs().max(), which would copy the whole tensor first.
    try (NDArray hi = x.max(); NDArray lo = x.min()) {
      max = Math.max(hi.getFloat(), -lo.getFloat());
    }
    if (max > F16_MAX) {
      throw new ModelConfigException(w.fileOf(names.get(0)) + ": tensor" + (names.size() > 1
          ? "s " : " ") + String.join(", ", names.stream().map(n -> "'" + n + "'").toList())
          + " hold a value of magnitude " + max + ", beyond float16's range (65504): load the "
          + "model in fp32 or bf16");
    }
    return x.toType(DataType.FLOAT16, false);
  }

  /** A {@link Linear} per part: views of its rows of the stacked weight and bias. */
  private static void views(ModelConfig c, Map<Projection, Linear> out, List<Projection> parts,
      NDArray weight, NDArray bias) {
    long at = 0;
    for (Projection p : parts) {
      long rows = p.outFeatures(c);
      out.put(p, Linear.of(rowsOf(weight, at, rows), bias == null ? null
          : rowsOf(bias, at, rows)));
      at += rows;
    }
  }

  /** Rows {@code [from, from + count)} of {@code a}, a view sharing its memory. */
  static NDArray rowsOf(NDArray a, long from, long count) {
    if (from == 0 && count == a.getShape().get(0)) {
      return a;
    }
    return ai.djl.pytorch.jni.JniUtils.slice((ai.djl.pytorch.engine.PtNDArray) a, 0, from,
        from + count, 1);
  }

  private static NDArray onDevice(NDArray a, NDManager target) {
    if (a.getManager() == target) {
      return a;
    }
    NDArray moved = a.toDevice(target.getDevice(), false);
    moved.attach(target);
    a.close();
    return moved;
  }

  /**
   * Whether CPU models map float32 checkpoints instead of reading them ({@link WeightReader});
   * {@code -Dlt.load.mmap=false} reads them into fresh memory, as before.
   */
  static boolean mapFiles() {
    String v = System.getProperty("lt.load.mmap", "true").trim();
    if (!v.equalsIgnoreCase("true") && !v.equalsIgnoreCase("false")) {
      throw new IllegalArgumentException("system property lt.load.mmap = '" + v
          + "': expected true or false");
    }
    return v.equalsIgnoreCase("true");
  }

  /** Weight tensors that alias a memory mapping of the checkpoint rather than a copy. */
  public int mappedTensors() {
    return mappings.size();
  }

  /** Bytes read from the checkpoint's files. */
  public long loadedBytes() {
    return loadedBytes;
  }

  /** Bytes of the weights held in memory (each stored once; a tied LM head is the embedding). */
  public long weightBytes() {
    long n = bytes(embedding) + bytes(finalNorm) + (lmHead == embedding ? 0 : bytes(lmHead));
    for (Layer l : layers) {
      for (NDArray a : new NDArray[] {l.inputNorm(), l.postNorm(), l.qkv(), l.qkvBias(), l.o(),
          l.oBias(), l.gateUp(), l.gateUpBias(), l.down(), l.downBias()}) {
        n += a == null ? 0 : bytes(a);
      }
    }
    return n;
  }

  static long bytes(NDArray a) {
    return a.getShape().size() * (TrainingOps.isHalf(a) ? 2 : a.getDataType().getNumOfBytes());
  }

  /**
   * Whether the products' weights are stored in bf16 ({@link #load(Path, Device, Precision)}):
   * then every product runs in bf16 with float32 accumulation, and a LoRA merged into them is
   * rounded to bf16 (unmerging does not restore the loaded values exactly).
   */
  public boolean bf16Products() {
    return products == Precision.BF16;
  }

  /**
   * The format of the products' weights as loaded: FP32, or BF16 / F16 ({@link #load(Path,
   * Device, Precision)}), in which every product runs with float32 accumulation and a merged
   * LoRA is rounded to that format.
   */
  public Precision productPrecision() {
    return products;
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

  /** The LM head {@code (V, E)}, the embedding itself when tied. */
  NDArray lmHead() {
    return lmHead;
  }

  /** A layer's stored weights. */
  Layer layer(int i) {
    return layers[i];
  }

  /** RoPE's {@code (P, D)} cos and sin tables, unscaled. */
  NDArray[] ropeTables() {
    return new NDArray[] {kCos, kSin};
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
    if (TrainingOps.isHalf(embedding)) {
      x = x.toType(DataType.FLOAT32, false); // exact
    }
    if (embeddingNoise != null) {
      x = x.add(embeddingNoise);
    }
    // (B, T, 1, D): broadcast over heads
    NDArray qc = lookup(positions, qCos).expandDims(2);
    NDArray qs = lookup(positions, qSin).expandDims(2);
    NDArray kc = lookup(positions, kCos).expandDims(2);
    NDArray ks = lookup(positions, kSinSigned).expandDims(2);
    for (int i = 0; i < layers.length; i++) {
      // The layer's intermediates (norms, projections, scores, softmax, ...) in a manager of
      // their own, closed when the layer is done: a DJL array lives until it is closed, so
      // without this every intermediate of every layer stayed until the micro-step's end, where
      // PyTorch frees each one when unused. Autograd keeps its own reference to what backward
      // needs, so closing the handles frees only the rest. Each op's result joins its first
      // input's manager; the layer's input x is moved in, its output moved out. Not when the
      // layers' outputs are kept (a hidden-state objective), where x must outlive the layer.
      NDManager outer = ids.getManager(); // the caller's scope
      NDManager layerScope = layerOutputs == null ? outer.newSubManager() : null;
      if (layerScope != null) {
        x.attach(layerScope);
      }
      Layer layer = layers[i];
      Map<Projection, Linear> lin = layer.linears();
      NDArray hn = rmsNorm(x, layer.inputNorm()); // (B, T, E)
      // RoPE on the contiguous (B, T, heads, D) projections, where rotate-half is one plain
      // matrix product over (B*T*heads, D); a (B, H, T, D) view made it a broadcast batched
      // product, the costliest op of a decode step.
      NDArray[] qkv = projectStacked(QKV, layer.qkv(), layer.qkvBias(), hn,
          deltas(i, QKV, hn, adapter, training));
      NDArray q = rope(qkv[0], b, t, h, qc, qs).transpose(0, 2, 1, 3); // (B, H, T, D)
      NDArray key = rope(qkv[1], b, t, k, kc, ks).transpose(0, 2, 1, 3); // (B, K, T, D)
      NDArray v = qkv[2].reshape(b, t, k, d).transpose(0, 2, 1, 3); // (B, K, T, D)
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
      NDArray act = gatedActivation(layer, hm, deltas(i, GATE_UP, hm, adapter, training));
      x = residual(x, project(i, Projection.DOWN_PROJ, lin, act, adapter, training), training);
      if (layerOutputs != null) {
        layerOutputs.put(i, x); // never modified in place later: residual() adds into the new y
      }
      if (layerScope != null) {
        x.attach(outer);
        layerScope.close();
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
    return TrainingOps.isHalf(lmHead) ? TrainingOps.mixedLinear(hidden, lmHead)
        : hidden.matMul(lmHeadT);
  }

  /**
   * The gradient {@code (..., E)} of the hidden states given the logits' gradient {@code (...,
   * V)}: {@code dlogits @ lmHead}, as autograd computes it through {@link #logits} (for a bf16
   * head, dlogits rounded to bf16 and accumulated in float32). Nothing is recorded.
   */
  public NDArray logitsBackward(NDArray dlogits) {
    return TrainingOps.isHalf(lmHead) ? TrainingOps.mixedLinear(dlogits, lmHeadT)
        : dlogits.matMul(lmHead);
  }

  /** Whether the LM head takes no gradient (it is frozen in every training here). */
  public boolean headFrozen() {
    return !lmHead.hasGradient();
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

  private static final List<Projection> QKV =
      List.of(Projection.Q_PROJ, Projection.K_PROJ, Projection.V_PROJ);
  private static final List<Projection> GATE_UP =
      List.of(Projection.GATE_PROJ, Projection.UP_PROJ);

  /** The adapter's deltas of {@code parts} for input x, in order; null where not adapted. */
  private static NDArray[] deltas(int layer, List<Projection> parts, NDArray x, Adapter adapter,
      boolean training) {
    NDArray[] out = new NDArray[parts.size()];
    for (int j = 0; adapter != null && j < out.length; j++) {
      out[j] = adapter.delta(layer, parts.get(j), x, training);
    }
    return out;
  }

  /**
   * The projections {@code parts} of a layer through their stacked weight as one product, then
   * split, each with its adapter delta (null: none) added: one GEMM instead of three (two)
   * forward and backward, which on a 576-wide model's 192-row k and v products ran well below
   * the large products' FLOP rate.
   */
  private NDArray[] projectStacked(List<Projection> parts, NDArray weight, NDArray bias,
      NDArray x, NDArray[] deltas) {
    NDArray y;
    if (TrainingOps.isHalf(weight)) {
      y = TrainingOps.mixedLinear(x, weight);
    } else {
      try (NDArray weightT = weight.transpose(1, 0)) {
        y = x.matMul(weightT);
      }
    }
    if (bias != null) {
      y = y.add(bias);
    }
    long[] cuts = new long[parts.size() - 1];
    long at = 0;
    for (int j = 0; j < cuts.length; j++) {
      at += parts.get(j).outFeatures(config);
      cuts[j] = at;
    }
    ai.djl.ndarray.NDList split = y.split(cuts, y.getShape().dimension() - 1);
    NDArray[] out = new NDArray[parts.size()];
    for (int j = 0; j < out.length; j++) {
      out[j] = deltas[j] == null ? split.get(j) : split.get(j).add(deltas[j]);
    }
    return out;
  }

  /**
   * The MLP's {@code silu(gate) * up}. Without a bias or adapter delta on gate and up, as two
   * products inside one TorchScript op ({@link TrainingOps#swiGlu}): the stacked product's split
   * costs a concatenation of the two gradients in backward, more than a second GEMM does here.
   */
  private NDArray gatedActivation(Layer layer, NDArray x, NDArray[] deltas) {
    if (deltas[0] == null && deltas[1] == null && layer.gateUpBias() == null) {
      return TrainingOps.swiGlu(x, layer.gateUp());
    }
    NDArray[] gateUp = projectStacked(GATE_UP, layer.gateUp(), layer.gateUpBias(), x, deltas);
    return TrainingOps.siluMul(gateUp[0], gateUp[1]);
  }

  /**
   * {@code (B, T, heads*D) -> (B, T, heads, D)} rotated: {@code x*cos + rotate_half(x)*sin}, as
   * {@code x*cos + roll(x, D/2)*sinSigned} ({@link TrainingOps#rope}).
   */
  private NDArray rope(NDArray proj, long b, long t, int heads, NDArray cos, NDArray sinSigned) {
    return TrainingOps.rope(proj.reshape(b, t, heads, config.headDim()), cos, sinSigned);
  }

  private NDArray rmsNorm(NDArray x, NDArray weight) {
    return TrainingOps.rmsNorm(x, weight, eps, meanColumn);
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

  public static NDArray int64(NDManager m, long[] values, long... shape) {
    return m.create(values, new Shape(shape)).toType(DataType.INT64, false);
  }
}
