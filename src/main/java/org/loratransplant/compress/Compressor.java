package org.loratransplant.compress;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeSet;
import java.util.regex.Pattern;
import org.loratransplant.eval.Reports;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.safetensors.Checkpoint;
import org.loratransplant.safetensors.DType;
import org.loratransplant.safetensors.SafeTensorsFile;
import org.loratransplant.safetensors.SafeTensorsWriter;
import org.loratransplant.safetensors.TensorData;
import org.loratransplant.safetensors.TensorInfo;

/**
 * Writes a compressed copy of a Hugging Face Llama-family model directory.
 *
 * <p>Storage: the output is a normal model directory whose {@code model.safetensors} holds the
 * <em>dequantised</em> float32 weights of the seven linear projections of every layer (q, k, v,
 * o, gate, up, down) and every other tensor (embeddings, norms, lm_head) byte for byte as in the
 * source, so our runtime, transformers and PEFT load it unchanged and a LoRA trained over it
 * (QLoRA) is a normal LoRA of the original architecture. The quantised payload itself
 * ({@value #PAYLOAD_FILE}: NF4 codes packed two per byte with the double-quantised block
 * constants, or int8 codes with per-channel scales) and {@value #REPORT_FILE} (method, block
 * sizes, per-tensor max-abs and relative Frobenius error) sit beside it; {@link #verify}
 * dequantises the payload and checks it reproduces the stored weights bit for bit. The cost:
 * the runtime holds float32 weights, so memory and speed are those of the uncompressed model
 * (the numerics are exactly those of the compressed one); on-the-fly dequantisation, which saves
 * memory, is not built.
 */
public final class Compressor {
  public static final String REPORT_FILE = "compression.json";
  public static final String PAYLOAD_FILE = "compression.safetensors";
  private static final Pattern LINEAR = Pattern.compile(
      "model\\.layers\\.\\d+\\.(self_attn\\.(q|k|v|o)_proj|mlp\\.(gate|up|down)_proj)\\.weight");

  private Compressor() {}

  /** How to compress. */
  public enum Method {
    NF4, INT8, PRUNE;

    public static Method parse(String s) {
      for (Method m : values()) {
        if (m.name().toLowerCase(Locale.ROOT).equals(s)) {
          return m;
        }
      }
      throw new IllegalArgumentException("unknown method '" + s + "' (nf4, int8 or prune)");
    }

    public String id() {
      return name().toLowerCase(Locale.ROOT);
    }
  }

  /**
   * @param sparsity target fraction of zeroed entries (unstructured) or rows (structured); only
   *     for {@link Method#PRUNE}
   */
  public record Settings(Method method, double sparsity, boolean structured) {
    public Settings {
      if (method == Method.PRUNE && !(sparsity > 0 && sparsity < 1)) {
        throw new IllegalArgumentException("--sparsity must be in (0, 1) for prune, got "
            + sparsity);
      }
      if (method != Method.PRUNE && (sparsity != 0 || structured)) {
        throw new IllegalArgumentException("--sparsity and --structured apply to prune only");
      }
    }
  }

  /** The error of one compressed tensor. */
  public record TensorError(String name, long[] shape, double maxAbs, double relativeFrobenius,
      double sparsity) {}

  /**
   * Compresses {@code modelDir} into {@code out} (which must not exist); returns the per-tensor
   * errors, also written to {@value #REPORT_FILE}. The directory appears complete or not at all.
   */
  public static List<TensorError> compress(Path modelDir, Path out, Settings settings) {
    if (Files.exists(out)) {
      throw new IllegalArgumentException(out + " exists; choose another output directory");
    }
    Path abs = out.toAbsolutePath().normalize();
    Path tmp = abs.resolveSibling("." + abs.getFileName() + ".tmp-"
        + ProcessHandle.current().pid());
    try {
      PeftFormat.deleteRecursively(tmp);
      Files.createDirectories(tmp);
      List<TensorError> errors = write(modelDir, tmp, settings);
      Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE);
      return errors;
    } catch (IOException e) {
      throw new IllegalStateException("cannot write " + out + ": " + e.getMessage(), e);
    } finally {
      try {
        PeftFormat.deleteRecursively(tmp);
      } catch (IOException ignored) {
        // nothing more to do
      }
    }
  }

  private static List<TensorError> write(Path modelDir, Path dir, Settings s) throws IOException {
    try (var files = Files.list(modelDir)) {
      for (Path f : files.toList()) {
        String n = f.getFileName().toString();
        if (Files.isRegularFile(f) && !n.endsWith(".safetensors")
            && !n.equals(Checkpoint.INDEX_FILE) && !n.equals(REPORT_FILE)) {
          Files.copy(f, dir.resolve(n));
        }
      }
    }
    Map<String, TensorData> weights = new LinkedHashMap<>();
    Map<String, TensorData> payload = new LinkedHashMap<>();
    List<TensorError> errors = new java.util.ArrayList<>();
    try (Checkpoint ckpt = Checkpoint.open(modelDir)) {
      for (String name : new TreeSet<>(ckpt.names())) {
        TensorInfo info = ckpt.info(name);
        if (!LINEAR.matcher(name).matches()) {
          weights.put(name, TensorData.of(info.dtype(), info.dims(), ckpt.readBytes(name)));
          continue;
        }
        long[] dims = info.dims();
        int rows = (int) dims[0];
        int cols = (int) dims[1];
        float[] w = ckpt.readFloat32(name);
        float[] deq = switch (s.method()) {
          case NF4 -> {
            Nf4.Quantized q = Nf4.quantize(w);
            payload.put(name + ".nf4", TensorData.of(DType.U8, new long[] {q.packed().length},
                q.packed()));
            payload.put(name + ".absmax_code", TensorData.of(DType.U8,
                new long[] {q.absmaxCodes().length}, q.absmaxCodes()));
            payload.put(name + ".absmax2", TensorData.ofFloat32(
                new long[] {q.absmax2().length}, q.absmax2()));
            payload.put(name + ".offset", TensorData.ofFloat32(new long[] {1},
                new float[] {q.offset()}));
            yield q.dequantize();
          }
          case INT8 -> {
            Int8.Quantized q = Int8.quantize(w, rows, cols);
            payload.put(name + ".int8", TensorData.of(DType.I8, dims, q.codes()));
            payload.put(name + ".scale", TensorData.ofFloat32(new long[] {rows}, q.scales()));
            yield q.dequantize();
          }
          case PRUNE -> s.structured() ? Pruning.structured(w, rows, cols, s.sparsity())
              : Pruning.unstructured(w, s.sparsity());
        };
        weights.put(name, TensorData.ofFloat32(dims, deq));
        errors.add(error(name, dims, w, deq));
      }
    }
    if (errors.isEmpty()) {
      throw new IllegalArgumentException(modelDir + " has no q/k/v/o/gate/up/down_proj weights "
          + "named model.layers.N.{self_attn|mlp}.*_proj.weight: not a Llama-family model");
    }
    SafeTensorsWriter.write(dir.resolve(Checkpoint.SINGLE_FILE), weights, Map.of("format", "pt"));
    if (s.method() == Method.NF4) {
      payload.put("nf4_levels", TensorData.ofFloat32(new long[] {16}, Nf4.LEVELS));
      payload.put("dynamic_code", TensorData.ofFloat32(new long[] {256}, DynamicCode.CODE));
    }
    if (!payload.isEmpty()) {
      SafeTensorsWriter.write(dir.resolve(PAYLOAD_FILE), payload, Map.of("format", "lt"));
    }
    Files.writeString(dir.resolve(REPORT_FILE), Reports.toJson(report(modelDir, s, errors)));
    return errors;
  }

  static TensorError error(String name, long[] dims, float[] w, float[] deq) {
    double maxAbs = 0;
    double diff2 = 0;
    double norm2 = 0;
    int zeros = 0;
    for (int i = 0; i < w.length; i++) {
      double d = (double) w[i] - deq[i];
      maxAbs = Math.max(maxAbs, Math.abs(d));
      diff2 += d * d;
      norm2 += (double) w[i] * w[i];
      zeros += deq[i] == 0f ? 1 : 0;
    }
    return new TensorError(name, dims, maxAbs, norm2 == 0 ? 0 : Math.sqrt(diff2 / norm2),
        (double) zeros / w.length);
  }

  private static ObjectNode report(Path modelDir, Settings s, List<TensorError> errors) {
    ObjectMapper json = new ObjectMapper();
    ObjectNode r = json.createObjectNode();
    r.put("method", s.method().id());
    r.put("source_model", modelDir.toAbsolutePath().normalize().toString());
    r.put("storage", "model.safetensors holds the dequantised float32 weights of the compressed "
        + "tensors (every other tensor as in the source); " + PAYLOAD_FILE
        + " holds the quantised payload");
    r.put("compressed_modules", "q_proj k_proj v_proj o_proj gate_proj up_proj down_proj");
    switch (s.method()) {
      case NF4 -> {
        r.put("block_size", Nf4.BLOCK);
        r.put("double_quant", true);
        r.put("double_quant_block_size", Nf4.SECOND_BLOCK);
        r.put("double_quant_code", "bitsandbytes create_dynamic_map(signed=True), 8 bits");
        r.put("packing", "two 4-bit codes per byte, first value in the high nibble");
        ArrayNode levels = r.putArray("nf4_levels");
        for (float v : Nf4.LEVELS) {
          levels.add(v);
        }
      }
      case INT8 -> r.put("granularity", "symmetric, one absmax/127 scale per output channel");
      case PRUNE -> {
        r.put("sparsity", s.sparsity());
        r.put("structured", s.structured());
        r.put("criterion", s.structured() ? "L2 norm of each output channel (row)"
            : "|w| within each matrix");
      }
      default -> throw new AssertionError(s.method());
    }
    double worstRel = 0;
    ObjectNode t = r.putObject("tensors");
    for (TensorError e : errors) {
      ObjectNode n = t.putObject(e.name());
      ArrayNode shape = n.putArray("shape");
      for (long d : e.shape()) {
        shape.add(d);
      }
      n.put("max_abs_error", e.maxAbs());
      n.put("relative_frobenius_error", e.relativeFrobenius());
      n.put("zero_fraction", e.sparsity());
      worstRel = Math.max(worstRel, e.relativeFrobenius());
    }
    r.put("max_relative_frobenius_error", worstRel);
    return r;
  }

  /** The method recorded in a compressed directory's {@value #REPORT_FILE}. */
  public static Method methodOf(Path dir) {
    try {
      JsonNode r = new ObjectMapper().readTree(dir.resolve(REPORT_FILE).toFile());
      return Method.parse(r.path("method").asText());
    } catch (IOException e) {
      throw new IllegalArgumentException(dir.resolve(REPORT_FILE) + ": " + e.getMessage(), e);
    }
  }

  /**
   * Dequantises the payload of an NF4 or int8 directory and returns how many compressed tensors
   * it checked; fails naming the first tensor whose stored weights differ from the payload's
   * dequantisation in any bit.
   */
  public static int verify(Path dir) {
    Method m = methodOf(dir);
    if (m == Method.PRUNE) {
      return 0;
    }
    int checked = 0;
    try (Checkpoint ckpt = Checkpoint.open(dir);
        SafeTensorsFile p = SafeTensorsFile.open(dir.resolve(PAYLOAD_FILE))) {
      for (String name : new TreeSet<>(ckpt.names())) {
        if (!LINEAR.matcher(name).matches()) {
          continue;
        }
        long[] dims = ckpt.info(name).dims();
        float[] deq;
        if (m == Method.NF4) {
          deq = new Nf4.Quantized(p.readBytes(name + ".nf4"), (int) (dims[0] * dims[1]),
              p.readBytes(name + ".absmax_code"), p.readFloat32(name + ".absmax2"),
              p.readFloat32(name + ".offset")[0]).dequantize();
        } else {
          float[] scales = p.readFloat32(name + ".scale");
          deq = new Int8.Quantized(p.readBytes(name + ".int8"), scales, (int) dims[0],
              (int) dims[1]).dequantize();
        }
        float[] stored = ckpt.readFloat32(name);
        for (int i = 0; i < stored.length; i++) {
          if (Float.floatToRawIntBits(stored[i]) != Float.floatToRawIntBits(deq[i])) {
            throw new IllegalStateException(dir + ": " + name + "[" + i + "] is " + stored[i]
                + " but the payload dequantises to " + deq[i]);
          }
        }
        checked++;
      }
    }
    return checked;
  }
}
