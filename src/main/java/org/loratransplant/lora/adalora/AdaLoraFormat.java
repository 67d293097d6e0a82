package org.loratransplant.lora.adalora;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.loratransplant.lora.LoraAdapter.Key;
import org.loratransplant.model.ModelConfig;
import org.loratransplant.model.Projection;
import org.loratransplant.safetensors.FiniteCheck;
import org.loratransplant.safetensors.SafeTensorsFile;
import org.loratransplant.safetensors.SafeTensorsWriter;
import org.loratransplant.safetensors.TensorData;
import org.loratransplant.safetensors.TensorInfo;

/**
 * PEFT's AdaLoRA layout (checked against peft 0.21): {@code adapter_config.json} with
 * {@code peft_type "ADALORA"}, {@code init_r}, {@code target_r}, {@code lora_alpha}, the schedule
 * fields and {@code rank_pattern} (base-model module name + {@code .lora_E} -> one boolean per
 * {@code init_r} slot, true = kept); {@code adapter_model.safetensors} with
 * {@code base_model.model.<module>.lora_A} {@code (rank, in)}, {@code .lora_E} {@code (rank, 1)}
 * and {@code .lora_B} {@code (out, rank)} holding only the kept triplets (rank = trues in the
 * pattern, or init_r without one). peft 0.21 writes the names without a {@code .weight} suffix
 * and no {@code ranknum} (it is init_r); older versions wrote {@code .weight} and a
 * {@code ranknum}: both are read.
 */
public final class AdaLoraFormat {
  public static final String CONFIG_FILE = "adapter_config.json";
  public static final String WEIGHTS_FILE = "adapter_model.safetensors";
  private static final Pattern KEY = Pattern.compile(
      "base_model\\.model\\.model\\.layers\\.(\\d+)\\.(self_attn|mlp)\\.(\\w+)\\."
          + "(lora_A|lora_B|lora_E|ranknum)(?:\\.weight|\\.default)?");
  private static final ObjectMapper JSON = new ObjectMapper();

  private AdaLoraFormat() {}

  /** Whether {@code dir} holds an adapter whose config says {@code peft_type "ADALORA"}. */
  public static boolean isAdaLora(Path dir) {
    Path f = dir.resolve(CONFIG_FILE);
    if (!Files.isRegularFile(f)) {
      return false;
    }
    try {
      return "ADALORA".equals(JSON.readTree(f.toFile()).path("peft_type").asText());
    } catch (IOException e) {
      return false;
    }
  }

  /** The config and its rank_pattern (module key -> kept slots). */
  public record Read(AdaLoraConfig config, Map<Key, boolean[]> rankPattern) {}

  /** Reads and validates {@code adapter_config.json}. */
  public static Read readConfig(Path dir) {
    Path file = dir.resolve(CONFIG_FILE);
    JsonNode c;
    try {
      c = JSON.readTree(file.toFile());
    } catch (IOException e) {
      throw new IllegalArgumentException(file + ": cannot read: " + e.getMessage(), e);
    }
    String where = file + ": ";
    if (!"ADALORA".equals(c.path("peft_type").asText())) {
      throw new IllegalArgumentException(where + "peft_type is '" + c.path("peft_type").asText()
          + "', not ADALORA");
    }
    for (String f : new String[] {"use_dora", "fan_in_fan_out"}) {
      if (c.path(f).asBoolean(false)) {
        throw new IllegalArgumentException(where + f + "=true is not supported");
      }
    }
    if (c.hasNonNull("bias") && !c.get("bias").asText().equals("none")) {
      throw new IllegalArgumentException(where + "bias '" + c.get("bias").asText()
          + "' is not supported (none)");
    }
    if (!c.path("init_r").isInt()) {
      throw new IllegalArgumentException(where + "init_r must be an integer");
    }
    Set<Projection> targets = EnumSet.noneOf(Projection.class);
    JsonNode tm = c.get("target_modules");
    if (tm == null || !(tm.isArray() || tm.isTextual())) {
      throw new IllegalArgumentException(where + "target_modules must be a list of module names");
    }
    for (JsonNode n : tm.isArray() ? tm : JSON.createArrayNode().add(tm)) {
      String name = n.asText();
      Projection p = Projection.fromModuleName(name.substring(name.lastIndexOf('.') + 1));
      if (p == null) {
        throw new IllegalArgumentException(where + "target module '" + name + "' is not a "
            + "projection of a Llama-family decoder (q/k/v/o/gate/up/down_proj)");
      }
      targets.add(p);
    }
    List<Integer> layers = new ArrayList<>();
    JsonNode lt = c.get("layers_to_transform");
    if (lt != null && !lt.isNull()) {
      if (lt.isInt()) {
        layers.add(lt.asInt());
      } else {
        lt.forEach(n -> layers.add(n.asInt()));
      }
    }
    int initR = c.get("init_r").asInt();
    int total = c.path("total_step").asInt(0);
    AdaLoraConfig config = new AdaLoraConfig(initR, c.path("target_r").asInt(initR),
        c.path("lora_alpha").asDouble(8), c.path("lora_dropout").asDouble(0), targets, layers,
        c.path("tinit").asInt(0), c.path("tfinal").asInt(0), c.path("deltaT").asInt(1),
        c.path("beta1").asDouble(0.85), c.path("beta2").asDouble(0.85),
        c.path("orth_reg_weight").asDouble(0.5), total,
        c.path("base_model_name_or_path").asText(""));
    Map<Key, boolean[]> pattern = new TreeMap<>();
    JsonNode rp = c.get("rank_pattern");
    if (rp != null && !rp.isNull()) {
      Pattern name = Pattern.compile("(?:base_model\\.model\\.)?model\\.layers\\.(\\d+)\\."
          + "(?:self_attn|mlp)\\.(\\w+)\\.lora_E(?:\\.default)?");
      for (Map.Entry<String, JsonNode> e : (Iterable<Map.Entry<String, JsonNode>>)
          rp::fields) {
        Matcher m = name.matcher(e.getKey());
        Projection p = m.matches() ? Projection.fromModuleName(m.group(2)) : null;
        if (p == null) {
          throw new IllegalArgumentException(where + "rank_pattern key '" + e.getKey()
              + "' is not the lora_E of a decoder projection");
        }
        if (!e.getValue().isArray() || e.getValue().size() != initR) {
          throw new IllegalArgumentException(where + "rank_pattern['" + e.getKey() + "'] must be "
              + "a list of " + initR + " booleans (init_r)");
        }
        boolean[] keep = new boolean[initR];
        for (int i = 0; i < initR; i++) {
          keep[i] = e.getValue().get(i).asBoolean();
        }
        pattern.put(new Key(Integer.parseInt(m.group(1)), p), keep);
      }
    }
    return new Read(config, pattern);
  }

  /**
   * Loads a PEFT AdaLoRA adapter for {@code base}; each error names the tensor or field. The
   * forward then equals PEFT's ({@code AdaLoraFormatTest} checks log-probs against peft).
   */
  public static AdaLoraAdapter read(Path dir, ModelConfig base, NDManager parent) {
    Read read = readConfig(dir);
    AdaLoraConfig config = read.config();
    int r = config.initR();
    Path weights = dir.resolve(WEIGHTS_FILE);
    if (!Files.isRegularFile(weights)) {
      throw new IllegalArgumentException(weights + " is missing");
    }
    Map<Key, float[][]> values = new TreeMap<>();
    Map<Key, Float> ranknum = new TreeMap<>();
    try (SafeTensorsFile f = SafeTensorsFile.open(weights)) {
      Map<Key, Map<String, float[]>> raw = new TreeMap<>();
      Map<Key, Map<String, List<Long>>> shapes = new TreeMap<>();
      for (TensorInfo t : f.tensors()) {
        Matcher mt = KEY.matcher(t.name());
        Projection p = mt.matches() ? Projection.fromModuleName(mt.group(3)) : null;
        if (p == null) {
          throw new IllegalArgumentException(weights + ": tensor '" + t.name() + "' is not an "
              + "AdaLoRA weight of a Llama-family decoder projection");
        }
        int layer = Integer.parseInt(mt.group(1));
        if (layer >= base.numLayers() || !config.targetModules().contains(p)) {
          throw new IllegalArgumentException(weights + ": tensor '" + t.name() + "' adapts layer "
              + layer + " " + p.moduleName() + ", outside the base (" + base.numLayers()
              + " layers) or target_modules " + config.targetModules());
        }
        Key k = new Key(layer, p);
        float[] v = t.numel() == 0 ? new float[0] : f.readFloat32(t.name());
        String bad = FiniteCheck.problem(t.name(), v);
        if (bad != null) {
          throw new IllegalArgumentException(weights + ": " + bad);
        }
        raw.computeIfAbsent(k, x -> new LinkedHashMap<>()).put(mt.group(4), v);
        shapes.computeIfAbsent(k, x -> new LinkedHashMap<>()).put(mt.group(4), t.shape());
      }
      for (int l = 0; l < base.numLayers(); l++) {
        if (!config.adapts(l)) {
          continue;
        }
        for (Projection p : config.targetModules()) {
          Key k = new Key(l, p);
          Map<String, float[]> m = raw.get(k);
          String prefix = "base_model.model." + p.keyPrefix(l) + ".";
          for (String part : new String[] {"lora_A", "lora_E", "lora_B"}) {
            if (m == null || !m.containsKey(part)) {
              throw new IllegalArgumentException(weights + ": tensor '" + prefix + part
                  + "' is missing");
            }
          }
          boolean[] keep = read.rankPattern().getOrDefault(k, AdaLoraAdapter.all(r));
          int rank = 0;
          for (boolean b : keep) {
            rank += b ? 1 : 0;
          }
          int in = p.inFeatures(base);
          int out = p.outFeatures(base);
          check(weights, prefix + "lora_A", shapes.get(k).get("lora_A"), rank, in);
          check(weights, prefix + "lora_E", shapes.get(k).get("lora_E"), rank, 1);
          check(weights, prefix + "lora_B", shapes.get(k).get("lora_B"), out, rank);
          float[] a = new float[r * in];
          float[] e = new float[r];
          float[] b = new float[out * r];
          int row = 0;
          for (int slot = 0; slot < r; slot++) {
            if (!keep[slot]) {
              continue;
            }
            System.arraycopy(m.get("lora_A"), row * in, a, slot * in, in);
            e[slot] = m.get("lora_E")[row];
            for (int o = 0; o < out; o++) {
              b[o * r + slot] = m.get("lora_B")[o * rank + row];
            }
            row++;
          }
          values.put(k, new float[][] {a, e, b});
          if (m.containsKey("ranknum")) {
            ranknum.put(k, m.get("ranknum")[0]);
          }
        }
      }
    }
    return AdaLoraAdapter.of(config, base, parent, values, read.rankPattern(), ranknum);
  }

  private static void check(Path weights, String name, List<Long> shape, long d0, long d1) {
    if (shape.size() != 2 || shape.get(0) != d0 || shape.get(1) != d1) {
      throw new IllegalArgumentException(weights + ": tensor '" + name + "' has shape " + shape
          + " but the base model and rank_pattern need [" + d0 + ", " + d1 + "]");
    }
  }

  /**
   * Writes the adapter as peft 0.21 saves one: kept triplets only, the rank_pattern of every
   * module, no ranknum (PEFT recomputes init_r), names without {@code .weight}.
   */
  public static void write(AdaLoraAdapter adapter, Path dir) {
    AdaLoraConfig c = adapter.config();
    int r = c.initR();
    Map<String, TensorData> tensors = new LinkedHashMap<>();
    Map<String, Object> pattern = new TreeMap<>();
    for (Map.Entry<Key, AdaLoraAdapter.Triplets> e : adapter.modules().entrySet()) {
      Key k = e.getKey();
      AdaLoraAdapter.Triplets t = e.getValue();
      int in = k.projection().inFeatures(adapter.baseConfig());
      int out = k.projection().outFeatures(adapter.baseConfig());
      float[] aT = t.aT().toFloatArray(); // (in, r)
      float[] ev = t.e().toFloatArray();
      float[] bT = t.bT().toFloatArray(); // (r, out)
      int rank = t.rank();
      float[] a = new float[rank * in];
      float[] eo = new float[rank];
      float[] b = new float[out * rank];
      int row = 0;
      List<Boolean> keep = new ArrayList<>();
      for (int slot = 0; slot < r; slot++) {
        keep.add(t.kept()[slot]);
        if (!t.kept()[slot]) {
          continue;
        }
        for (int j = 0; j < in; j++) {
          a[row * in + j] = aT[j * r + slot];
        }
        eo[row] = ev[slot];
        for (int o = 0; o < out; o++) {
          b[o * rank + row] = bT[slot * out + o];
        }
        row++;
      }
      String prefix = "base_model.model." + k.projection().keyPrefix(k.layer()) + ".";
      tensors.put(prefix + "lora_A", TensorData.ofFloat32(new long[] {rank, in}, a));
      tensors.put(prefix + "lora_B", TensorData.ofFloat32(new long[] {out, rank}, b));
      tensors.put(prefix + "lora_E", TensorData.ofFloat32(new long[] {rank, 1}, eo));
      pattern.put(k.projection().keyPrefix(k.layer()) + ".lora_E", keep);
    }
    Map<String, Object> m = new TreeMap<>();
    m.put("peft_type", "ADALORA");
    m.put("base_model_name_or_path", c.baseModel());
    m.put("bias", "none");
    m.put("fan_in_fan_out", false);
    m.put("inference_mode", true);
    m.put("init_lora_weights", true);
    m.put("init_r", r);
    m.put("target_r", c.targetR());
    m.put("r", 8); // PEFT's unused LoraConfig field; it warns when set
    m.put("lora_alpha", c.alpha() == Math.rint(c.alpha()) ? (Object) (long) c.alpha()
        : (Object) c.alpha());
    m.put("lora_dropout", c.dropout());
    m.put("layers_to_transform", c.layersToTransform().isEmpty() ? null
        : new ArrayList<>(c.layersToTransform()));
    m.put("layers_pattern", null);
    List<String> modules = new ArrayList<>();
    for (Projection p : Projection.values()) {
      if (c.targetModules().contains(p)) {
        modules.add(p.moduleName());
      }
    }
    m.put("target_modules", modules);
    m.put("tinit", c.tinit());
    m.put("tfinal", c.tfinal());
    m.put("deltaT", c.deltaT());
    m.put("beta1", c.beta1());
    m.put("beta2", c.beta2());
    m.put("orth_reg_weight", c.orthRegWeight());
    m.put("total_step", c.totalStep());
    m.put("rank_pattern", pattern);
    m.put("modules_to_save", null);
    m.put("task_type", "CAUSAL_LM");
    m.put("use_dora", false);
    m.put("use_rslora", false);
    try {
      Files.createDirectories(dir);
      SafeTensorsWriter.write(dir.resolve(WEIGHTS_FILE), tensors, Map.of("format", "pt"));
      Files.writeString(dir.resolve(CONFIG_FILE), JSON.copy()
          .enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(m),
          StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new IllegalStateException("cannot write AdaLoRA adapter to " + dir + ": "
          + e.getMessage(), e);
    }
  }

  static String describe(boolean[] b) {
    return Arrays.toString(b);
  }
}
