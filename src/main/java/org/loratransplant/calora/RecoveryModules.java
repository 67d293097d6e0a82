package org.loratransplant.calora;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.loratransplant.lora.LoraAdapter.Key;
import org.loratransplant.model.Adapter;
import org.loratransplant.model.ModelConfig;
import org.loratransplant.model.Projection;
import org.loratransplant.safetensors.SafeTensorsFile;
import org.loratransplant.safetensors.SafeTensorsWriter;
import org.loratransplant.safetensors.TensorData;
import org.loratransplant.safetensors.TensorInfo;

/**
 * CA-LoRA's knowledge-recovery modules: beside each adapted projection a low-rank non-linear
 * bypass {@code R(x) = sigma(x D) U} with {@code D (in, r_c)} and {@code U (r_c, out)}, added to
 * the projection's output (no scaling). {@code D} starts Kaiming-uniform as LoRA's A does,
 * {@code U} at zero, so a fresh module changes nothing: the compressed model with the inherited
 * LoRA is the starting point.
 *
 * <p>Stored in {@value CaLoraAdapter#RECOVERY_FILE} beside the PEFT adapter, PyTorch's
 * {@code nn.Linear} layout: {@code model.layers.<l>.<block>.<proj>.recovery_D.weight} is
 * {@code D^T (r_c, in)}, {@code ...recovery_U.weight} is {@code U^T (out, r_c)}; metadata
 * {@code activation} and {@code rank}. In PyTorch: {@code out += recovery_U(sigma(recovery_D(x)))}.
 */
public final class RecoveryModules implements Adapter, AutoCloseable {
  private static final Pattern KEY = Pattern.compile(
      "model\\.layers\\.(\\d+)\\.(self_attn|mlp)\\.([a-z]+_proj)\\.recovery_(D|U)\\.weight");
  private final int rank;
  private final RecoveryActivation activation;
  private final NDManager manager;
  private final Map<Key, Module> modules;

  /** One projection's bypass, {@code d (in, r_c)} and {@code u (r_c, out)}. */
  public record Module(NDArray d, NDArray u) {}

  private RecoveryModules(int rank, RecoveryActivation activation, NDManager manager,
      Map<Key, Module> modules) {
    this.rank = rank;
    this.activation = activation;
    this.manager = manager;
    this.modules = Collections.unmodifiableMap(new TreeMap<>(modules));
  }

  /** Fresh modules on {@code keys}: D Kaiming-uniform from a seeded Java RNG, U zero. */
  public static RecoveryModules create(Collection<Key> keys, ModelConfig base, int rank,
      RecoveryActivation activation, NDManager parent, long seed) {
    if (rank <= 0) {
      throw new IllegalArgumentException("recovery rank must be positive, got " + rank);
    }
    NDManager m = parent.newSubManager();
    SplittableRandom rng = new SplittableRandom(seed);
    Map<Key, Module> out = new TreeMap<>();
    for (Key k : new java.util.TreeSet<>(keys)) {
      int in = k.projection().inFeatures(base);
      int outF = k.projection().outFeatures(base);
      double bound = 1.0 / Math.sqrt(in);
      float[] d = new float[in * rank];
      for (int i = 0; i < d.length; i++) {
        d[i] = (float) ((rng.nextDouble() * 2 - 1) * bound);
      }
      out.put(k, new Module(m.create(d, new Shape(in, rank)), m.zeros(new Shape(rank, outF))));
    }
    return new RecoveryModules(rank, activation, m, out);
  }

  /**
   * Modules with given values, row-major {@code d (in, r_c)} and {@code u (r_c, out)} per key
   * (tests, and the reader).
   */
  public static RecoveryModules of(ModelConfig base, int rank, RecoveryActivation activation,
      NDManager parent, Map<Key, float[][]> values) {
    NDManager m = parent.newSubManager();
    try {
      Map<Key, Module> out = new TreeMap<>();
      for (Map.Entry<Key, float[][]> e : values.entrySet()) {
        int in = e.getKey().projection().inFeatures(base);
        int outF = e.getKey().projection().outFeatures(base);
        float[] d = e.getValue()[0];
        float[] u = e.getValue()[1];
        if (d.length != in * rank || u.length != rank * outF) {
          throw new IllegalArgumentException("recovery module of layer " + e.getKey().layer()
              + " " + e.getKey().projection().moduleName() + ": D has " + d.length
              + " values and U " + u.length + ", need " + in + "x" + rank + " and " + rank + "x"
              + outF);
        }
        out.put(e.getKey(), new Module(m.create(d, new Shape(in, rank)),
            m.create(u, new Shape(rank, outF))));
      }
      return new RecoveryModules(rank, activation, m, out);
    } catch (RuntimeException ex) {
      m.close();
      throw ex;
    }
  }

  public int rank() {
    return rank;
  }

  public RecoveryActivation activation() {
    return activation;
  }

  public Map<Key, Module> modules() {
    return modules;
  }

  /** Every trainable array, in key order (D then U). */
  public List<NDArray> parameters() {
    List<NDArray> out = new ArrayList<>();
    modules.values().forEach(mod -> {
      out.add(mod.d());
      out.add(mod.u());
    });
    return out;
  }

  public long parameterCount() {
    return parameters().stream().mapToLong(a -> a.getShape().size()).sum();
  }

  /** {@code sigma(x D) U}, or null where no module sits. */
  @Override
  public NDArray delta(int layer, Projection projection, NDArray x, boolean training) {
    Module mod = modules.get(new Key(layer, projection));
    if (mod == null) {
      return null;
    }
    return activation.apply(x.matMul(mod.d())).matMul(mod.u());
  }

  /** Writes {@code file} (see the class comment for the layout); atomic. */
  public void write(Path file) {
    Map<String, TensorData> tensors = new LinkedHashMap<>();
    for (Map.Entry<Key, Module> e : modules.entrySet()) {
      Key k = e.getKey();
      long in = e.getValue().d().getShape().get(0);
      tensors.put(name(k, "D"), TensorData.ofFloat32(new long[] {rank, in},
          transpose(e.getValue().d().toFloatArray(), (int) in, rank)));
      long outF = e.getValue().u().getShape().get(1);
      tensors.put(name(k, "U"), TensorData.ofFloat32(new long[] {outF, rank},
          transpose(e.getValue().u().toFloatArray(), rank, (int) outF)));
    }
    SafeTensorsWriter.write(file, tensors, Map.of("format", "pt", "activation",
        activation.id(), "rank", Integer.toString(rank)));
  }

  /** Reads {@code file} for {@code base}; errors name the file and tensor. */
  public static RecoveryModules read(Path file, ModelConfig base, NDManager parent) {
    if (!Files.isRegularFile(file)) {
      throw new IllegalArgumentException(file + " is missing");
    }
    try (SafeTensorsFile f = SafeTensorsFile.open(file)) {
      Map<String, String> meta = f.metadata();
      if (meta == null || !meta.containsKey("rank") || !meta.containsKey("activation")) {
        throw new IllegalArgumentException(file + ": metadata must give 'rank' and "
            + "'activation'");
      }
      int rank;
      try {
        rank = Integer.parseInt(meta.get("rank"));
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException(file + ": metadata rank '" + meta.get("rank")
            + "' is not an integer");
      }
      RecoveryActivation act;
      try {
        act = RecoveryActivation.parse(meta.get("activation"));
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException(file + ": " + e.getMessage());
      }
      Map<Key, float[][]> values = new TreeMap<>();
      for (TensorInfo t : f.tensors()) {
        Matcher mt = KEY.matcher(t.name());
        Projection p = mt.matches() ? Projection.fromModuleName(mt.group(3)) : null;
        if (p == null || !p.keyPrefix(0).contains("." + mt.group(2) + ".")) {
          throw new IllegalArgumentException(file + ": tensor '" + t.name() + "' is not a "
              + "recovery module of a Llama-family projection");
        }
        int layer = Integer.parseInt(mt.group(1));
        if (layer >= base.numLayers()) {
          throw new IllegalArgumentException(file + ": tensor '" + t.name() + "' is for layer "
              + layer + " but the base model has " + base.numLayers() + " layers");
        }
        boolean isD = mt.group(4).equals("D");
        int in = p.inFeatures(base);
        int outF = p.outFeatures(base);
        long[] want = isD ? new long[] {rank, in} : new long[] {outF, rank};
        long[] got = t.shape().stream().mapToLong(Long::longValue).toArray();
        if (!java.util.Arrays.equals(got, want)) {
          throw new IllegalArgumentException(file + ": tensor '" + t.name() + "' has shape "
              + java.util.Arrays.toString(got) + " but rank " + rank + " and the base model "
              + "need " + java.util.Arrays.toString(want));
        }
        float[] v = f.readFloat32(t.name());
        float[][] slot = values.computeIfAbsent(new Key(layer, p), k -> new float[2][]);
        slot[isD ? 0 : 1] = isD ? transpose(v, rank, in) : transpose(v, outF, rank);
      }
      values.forEach((k, v) -> {
        if (v[0] == null || v[1] == null) {
          throw new IllegalArgumentException(file + ": tensor '" + name(k, v[0] == null ? "D"
              : "U") + "' is missing");
        }
      });
      return of(base, rank, act, parent, values);
    }
  }

  static String name(Key k, String which) {
    return k.projection().keyPrefix(k.layer()) + ".recovery_" + which + ".weight";
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

  @Override
  public void close() {
    manager.close();
  }

  @Override
  public String toString() {
    return "recovery " + activation.id() + "(x D) U, r_c=" + rank + " on " + modules.size()
        + " projections";
  }
}
