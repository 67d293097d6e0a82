package org.loratransplant.transfer;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.function.Consumer;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.LoraConfig;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.model.ModelConfig;
import org.loratransplant.model.Projection;
import org.loratransplant.safetensors.Checkpoint;
import org.loratransplant.safetensors.DType;

/**
 * Transfers a source model's LoRA to a target model without data or training (METHODS.md
 * section 3), module by module: the target layer j takes the source layer of
 * {@link LayerMap#byRelativeDepth}, and each projection the source adapts is copied (direct),
 * projected (LoRA-X) or aligned and shifted (Cross-LoRA), or skipped with a reason.
 *
 * <p>The written adapter has the source's r, alpha and rsLoRA setting (so the same scaling s) and
 * adapts the projections transferred in at least one layer; a skipped module of such a
 * projection holds zero A and B (no update; PEFT's layout needs every module of a listed
 * projection). A projected update is re-factored so that {@code s * B A = dW_t}:
 * {@code B = U_r S_r^(1/2) / sqrt(s)}, {@code A = S_r^(1/2) V_r^T / sqrt(s)}.
 *
 * <p>Only one module's weights are in memory at a time (a 7B weight is read, decomposed and
 * released before the next).
 */
public final class Transfer {
  private Transfer() {}

  /** The transferred adapter's values and the per-module report. */
  public record Result(Method method, LoraConfig config, ModelConfig target,
      Map<LoraAdapter.Key, LoraAdapter.Matrices> values, List<ModuleReport> modules,
      int[] layerMap, String sourceModel, String targetModel) {
    /** Modules transferred. */
    public long transferred() {
      return modules.stream().filter(ModuleReport::transferred).count();
    }

    /** The adapter, on {@code manager}. */
    public LoraAdapter adapter(NDManager manager) {
      return LoraAdapter.of(config, target, manager, values);
    }

    /** Writes the PEFT adapter with {@code transfer_report.json} and {@code .md} beside it. */
    public void write(Path dir) {
      try (NDManager m = NDManager.newBaseManager(Device.cpu());
          LoraAdapter a = adapter(m)) {
        PeftFormat.write(a, dir, Map.of(TransferReport.JSON_FILE, TransferReport.json(this),
            TransferReport.MARKDOWN_FILE, TransferReport.markdown(this)));
      }
    }
  }

  /** Runs a transfer of the PEFT adapter in {@code adapterDir} (made for {@code sourceModel}). */
  public static Result run(TransferSettings settings, Path sourceModel, Path adapterDir,
      Path targetModel) {
    return run(settings, sourceModel, adapterDir, targetModel, row -> { });
  }

  /** {@link #run}, handing each module's report to {@code progress} as soon as it is done. */
  public static Result run(TransferSettings settings, Path sourceModel, Path adapterDir,
      Path targetModel, Consumer<ModuleReport> progress) {
    ModelConfig sc = ModelConfig.load(sourceModel);
    ModelConfig tc = ModelConfig.load(targetModel);
    int[] map = LayerMap.byRelativeDepth(sc.numLayers(), tc.numLayers());
    try (NDManager root = NDManager.newBaseManager(Device.cpu());
        LoraAdapter source = PeftFormat.read(adapterDir, sc, root);
        Checkpoint sw = Checkpoint.open(sourceModel);
        Checkpoint tw = Checkpoint.open(targetModel)) {
      LoraConfig srcConfig = source.config();
      List<ModuleReport> reports = new ArrayList<>();
      Map<LoraAdapter.Key, LoraAdapter.Matrices> values = new LinkedHashMap<>();
      Set<Projection> used = EnumSet.noneOf(Projection.class);
      int r = srcConfig.r();
      double scaling = srcConfig.scaling();
      for (int j = 0; j < tc.numLayers(); j++) {
        for (Projection p : srcConfig.targetModules()) {
          LoraAdapter.Key tk = new LoraAdapter.Key(j, p);
          LoraAdapter.Pair pair = source.pairs().get(new LoraAdapter.Key(map[j], p));
          int[] ss = {p.outFeatures(sc), p.inFeatures(sc)};
          int[] ts = {p.outFeatures(tc), p.inFeatures(tc)};
          Module mod = new Module(p, j, map[j], ss, ts);
          ModuleOutcome o;
          try (NDManager m = root.newSubManager()) {
            if (pair == null) {
              o = mod.skip("the source adapter does not adapt layer " + map[j]);
            } else {
              o = transferOne(settings, mod, pair, scaling, r, sw, tw, m);
            }
          }
          reports.add(o.report());
          progress.accept(o.report());
          if (o.values() != null) {
            used.add(p);
            values.put(tk, o.values());
          }
        }
      }
      Set<Projection> modules = used.isEmpty() ? srcConfig.targetModules() : used;
      for (int j = 0; j < tc.numLayers(); j++) {
        for (Projection p : modules) {
          values.computeIfAbsent(new LoraAdapter.Key(j, p), k -> new LoraAdapter.Matrices(
              new float[r * p.inFeatures(tc)], new float[p.outFeatures(tc) * r]));
        }
      }
      values.keySet().removeIf(k -> !modules.contains(k.projection()));
      LoraConfig out = new LoraConfig(r, srcConfig.alpha(), srcConfig.dropout(), modules,
          List.of(), srcConfig.useRslora(), targetModel.toString());
      return new Result(settings.method(), out, tc, values, reports, map,
          sourceModel.toString(), targetModel.toString());
    }
  }

  private record Module(Projection p, int layer, int sourceLayer, int[] sourceShape,
      int[] targetShape) {
    ModuleOutcome skip(String why) {
      return skip(why, Double.NaN, 0);
    }

    ModuleOutcome skip(String why, double similarity, int k) {
      return new ModuleOutcome(new ModuleReport(p.moduleName(), layer, sourceLayer, sourceShape,
          targetShape, similarity, k, false, why, 0), null);
    }

    boolean sameShape() {
      return sourceShape[0] == targetShape[0] && sourceShape[1] == targetShape[1];
    }

    String weight(int l) {
      return p.keyPrefix(l) + ".weight";
    }
  }

  private record ModuleOutcome(ModuleReport report, LoraAdapter.Matrices values) {}

  private static ModuleOutcome transferOne(TransferSettings st, Module mod, LoraAdapter.Pair pair,
      double scaling, int r, Checkpoint sw, Checkpoint tw, NDManager m) {
    Method method = st.method();
    if (method == Method.DIRECT) {
      if (!mod.sameShape()) {
        return mod.skip("shape " + shape(mod.sourceShape()) + " -> " + shape(mod.targetShape())
            + ": direct reuse copies equal shapes only (never pads)");
      }
      double cos = cosine(weight(sw, mod.weight(mod.sourceLayer()), mod.sourceShape(), m).float32(),
          weight(tw, mod.weight(mod.layer()), mod.targetShape(), m).float32());
      LoraAdapter.Matrices v = new LoraAdapter.Matrices(pair.aT().transpose().toFloatArray(),
          pair.bT().transpose().toFloatArray());
      return new ModuleOutcome(new ModuleReport(mod.p().moduleName(), mod.layer(),
          mod.sourceLayer(), mod.sourceShape(), mod.targetShape(), cos, 0, true,
          "copied (shapes match)", 1.0), v);
    }
    if (method == Method.LORA_X && !mod.sameShape()) {
      return mod.skip("shape " + shape(mod.sourceShape()) + " -> " + shape(mod.targetShape())
          + ": LoRA-X projects within equal shapes (use cross-lora)");
    }
    LowRank dw = new LowRank(pair.bT().transpose().toType(DataType.FLOAT64, false).mul(scaling),
        pair.aT().transpose().toType(DataType.FLOAT64, false));
    double srcNorm = dw.frobenius();
    int minDim = Math.min(Math.min(mod.sourceShape()[0], mod.sourceShape()[1]),
        Math.min(mod.targetShape()[0], mod.targetShape()[1]));
    int k = st.rankFor(minDim);
    long seed = st.seed() * 1_000_003L + mod.layer() * 31L + mod.p().ordinal();
    Svd t = weight(tw, mod.weight(mod.layer()), mod.targetShape(), m).truncated(k, seed);
    if (method == Method.LORA_X && st.threshold() == 0) {
      // Nothing can fall below a zero threshold, and LoRA-X reads the target's bases alone: the
      // source weight's SVD (half the work) would only fill the report's similarity column.
      Subspaces.Projected proj = Subspaces.loraX(dw, t, r);
      return transferred(mod, Double.NaN, k, "projected", proj, srcNorm, scaling);
    }
    Svd s = weight(sw, mod.weight(mod.sourceLayer()), mod.sourceShape(), m).truncated(k,
        seed + 7);
    double sim = method == Method.LORA_X ? Subspaces.overlap(s, t)
        : Subspaces.spectralCosine(s, t);
    if (sim < st.threshold()) {
      return mod.skip(String.format(Locale.ROOT, "similarity %.4f < threshold %.4f", sim,
          st.threshold()), sim, k);
    }
    Subspaces.Projected proj = method == Method.LORA_X ? Subspaces.loraX(dw, t, r)
        : Subspaces.crossLora(dw, s, t, r);
    return transferred(mod, sim, k, method == Method.LORA_X ? "projected" : "aligned and shifted",
        proj, srcNorm, scaling);
  }

  private static ModuleOutcome transferred(Module mod, double sim, int k, String how,
      Subspaces.Projected proj, double srcNorm, double scaling) {
    double root = Math.sqrt(scaling);
    float[] a = proj.factors().a().div(root).toType(DataType.FLOAT32, false).toFloatArray();
    float[] b = proj.factors().b().div(root).toType(DataType.FLOAT32, false).toFloatArray();
    return new ModuleOutcome(new ModuleReport(mod.p().moduleName(), mod.layer(), mod.sourceLayer(),
        mod.sourceShape(), mod.targetShape(), sim, k, true, how + ", rank " + proj.rank(),
        srcNorm == 0 ? 0 : proj.norm() / srcNorm), new LoraAdapter.Matrices(a, b));
  }

  /** A weight as read, in float32; {@code bf16} when the file stores it so (exact values). */
  private record Weight(NDArray float32, boolean bf16) {
    Svd truncated(int k, long seed) {
      return bf16 ? Linalg.truncatedBf16(float32, k, seed) : Linalg.truncated(float32, k, seed);
    }
  }

  private static Weight weight(Checkpoint c, String name, int[] shape, NDManager m) {
    if (!c.has(name)) {
      throw new IllegalArgumentException(c.dir() + ": weight '" + name + "' is missing");
    }
    long[] dims = c.info(name).dims();
    if (dims.length != 2 || dims[0] != shape[0] || dims[1] != shape[1]) {
      throw new IllegalArgumentException(c.dir() + ": weight '" + name + "' has shape "
          + java.util.Arrays.toString(dims) + " but config.json implies " + shape(shape));
    }
    return new Weight(m.create(c.readFloat32(name), new Shape(shape[0], shape[1])),
        c.info(name).dtype() == DType.BF16);
  }

  /** The cosine of two same-shaped weights, products summed in float32 (a report figure). */
  private static double cosine(NDArray x, NDArray y) {
    NDArray a = x.toType(DataType.FLOAT32, false);
    NDArray b = y.toType(DataType.FLOAT32, false);
    double xy = a.mul(b).sum().toType(DataType.FLOAT64, false).getDouble();
    double xx = a.mul(a).sum().toType(DataType.FLOAT64, false).getDouble();
    double yy = b.mul(b).sum().toType(DataType.FLOAT64, false).getDouble();
    return xx == 0 || yy == 0 ? 0 : xy / Math.sqrt(xx * yy);
  }

  static String shape(int[] s) {
    return s[0] + "x" + s[1];
  }
}
