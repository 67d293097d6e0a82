package org.loratransplant.lora;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.loratransplant.model.ModelConfig;
import org.loratransplant.model.Projection;
import org.loratransplant.safetensors.SafeTensorsFile;
import org.loratransplant.safetensors.SafeTensorsWriter;
import org.loratransplant.safetensors.TensorData;
import org.loratransplant.safetensors.TensorInfo;

/**
 * The Hugging Face PEFT adapter layout: {@code adapter_config.json} (sorted keys, two-space
 * indent, as PEFT writes it) and {@code adapter_model.safetensors} with keys
 * {@code base_model.model.model.layers.{i}.{self_attn|mlp}.{module}.lora_{A|B}.weight}, A
 * {@code (r, in)} and B {@code (out, r)}, float32.
 */
public final class PeftFormat {
  public static final String CONFIG_FILE = "adapter_config.json";
  public static final String WEIGHTS_FILE = "adapter_model.safetensors";
  private static final Pattern KEY = Pattern.compile(
      "base_model\\.model\\.model\\.layers\\.(\\d+)\\.(self_attn|mlp)\\.(\\w+)\\.lora_([AB])"
          + "\\.weight");
  private static final ObjectMapper JSON = new ObjectMapper();

  private PeftFormat() {}

  static String key(LoraAdapter.Key k, String ab) {
    return "base_model.model." + k.projection().keyPrefix(k.layer()) + ".lora_" + ab + ".weight";
  }

  /** Whether {@code dir} looks like a PEFT adapter directory. */
  public static boolean isAdapterDir(Path dir) {
    return Files.isRegularFile(dir.resolve(CONFIG_FILE));
  }

  /** Reads and validates {@code adapter_config.json}. */
  public static LoraConfig readConfig(Path dir) {
    Path file = dir.resolve(CONFIG_FILE);
    if (!Files.isRegularFile(file)) {
      throw new IllegalArgumentException(dir + " is not a PEFT adapter: " + CONFIG_FILE
          + " is missing");
    }
    JsonNode c;
    try {
      c = JSON.readTree(file.toFile());
    } catch (IOException e) {
      throw new IllegalArgumentException(file + ": not valid JSON: " + e.getMessage(), e);
    }
    String where = file + ": ";
    if (!"LORA".equals(c.path("peft_type").asText())) {
      throw new IllegalArgumentException(where + "peft_type is '" + c.path("peft_type").asText()
          + "', only LORA is supported");
    }
    requireAbsentOrFalse(c, "use_dora", where);
    requireAbsentOrFalse(c, "fan_in_fan_out", where);
    if (c.hasNonNull("bias") && !c.get("bias").asText().equals("none")) {
      throw new IllegalArgumentException(where + "bias '" + c.get("bias").asText()
          + "' is not supported (none)");
    }
    if (c.hasNonNull("rank_pattern") && c.get("rank_pattern").size() > 0) {
      throw new IllegalArgumentException(where + "rank_pattern is not supported (per-module "
          + "ranks)");
    }
    if (c.hasNonNull("alpha_pattern") && c.get("alpha_pattern").size() > 0) {
      throw new IllegalArgumentException(where + "alpha_pattern is not supported (per-module "
          + "lora_alpha; one lora_alpha applies to every module)");
    }
    JsonNode exclude = c.get("exclude_modules");
    if (exclude != null && !exclude.isNull()
        && (exclude.isTextual() ? !exclude.asText().isEmpty() : exclude.size() > 0)) {
      throw new IllegalArgumentException(where + "exclude_modules is not supported (" + exclude
          + "); list the adapted modules in target_modules instead");
    }
    if (c.hasNonNull("modules_to_save") && c.get("modules_to_save").size() > 0) {
      throw new IllegalArgumentException(where + "modules_to_save is not supported");
    }
    if (!c.path("r").isInt() || c.get("r").asInt() <= 0) {
      throw new IllegalArgumentException(where + "r must be a positive integer");
    }
    if (!c.path("lora_alpha").isNumber()) {
      throw new IllegalArgumentException(where + "lora_alpha must be a number");
    }
    JsonNode tm = c.get("target_modules");
    if (tm == null || !(tm.isArray() || tm.isTextual())) {
      throw new IllegalArgumentException(where + "target_modules must be a list of module names");
    }
    List<String> names = new ArrayList<>();
    for (JsonNode n : tm.isArray() ? tm : JSON.createArrayNode().add(tm)) {
      names.add(n.asText());
    }
    TargetModules.Resolved resolved = TargetModules.resolve(names, where);
    Set<Projection> targets = resolved.projections();
    List<Integer> layers = new ArrayList<>();
    JsonNode lt = c.get("layers_to_transform");
    if (lt != null && !lt.isNull()) {
      if (lt.isInt()) {
        layers.add(lt.asInt());
      } else if (lt.isArray()) {
        lt.forEach(n -> layers.add(n.asInt()));
      } else {
        throw new IllegalArgumentException(where + "layers_to_transform must be an int or a list");
      }
    }
    if (!resolved.layers().isEmpty()) {
      // Full module names select their layers; with layers_to_transform too, PEFT adapts a
      // layer only when both select it.
      List<Integer> both = new ArrayList<>(resolved.layers());
      if (!layers.isEmpty()) {
        both.retainAll(layers);
      }
      if (both.isEmpty()) {
        throw new IllegalArgumentException(where + "target_modules name layers "
            + resolved.layers() + " but layers_to_transform is " + layers + ": no layer is "
            + "adapted");
      }
      layers.clear();
      layers.addAll(both);
    }
    return new LoraConfig(c.get("r").asInt(), c.get("lora_alpha").asDouble(),
        c.path("lora_dropout").asDouble(0), targets, layers, c.path("use_rslora").asBoolean(false),
        c.path("base_model_name_or_path").asText(""));
  }

  private static void requireAbsentOrFalse(JsonNode c, String field, String where) {
    if (c.path(field).asBoolean(false)) {
      throw new IllegalArgumentException(where + field + "=true is not supported");
    }
  }

  /**
   * Loads an adapter for {@code base}. Every tensor must be a LoRA A/B of a target module of a
   * layer the base has, with the shape the base implies; each error names the tensor.
   */
  public static LoraAdapter read(Path dir, ModelConfig base, NDManager parent) {
    LoraConfig config = readConfig(dir);
    Path weights = dir.resolve(WEIGHTS_FILE);
    if (!Files.isRegularFile(weights)) {
      if (Files.isRegularFile(dir.resolve("adapter_model.bin"))) {
        throw new IllegalArgumentException(dir.resolve("adapter_model.bin") + ": pickle adapters "
            + "are not supported (they can execute code on load); save with safetensors");
      }
      throw new IllegalArgumentException(weights + " is missing");
    }
    config.checkAgainst(base);
    NDManager m = parent.newSubManager();
    try (SafeTensorsFile f = SafeTensorsFile.open(weights)) {
      Map<LoraAdapter.Key, NDArray[]> found = new TreeMap<>();
      for (TensorInfo t : f.tensors()) {
        Matcher mt = KEY.matcher(t.name());
        if (!mt.matches()) {
          throw new IllegalArgumentException(weights + ": tensor '" + t.name() + "' is not a "
              + "LoRA weight of a Llama-family decoder layer");
        }
        int layer = Integer.parseInt(mt.group(1));
        Projection p = Projection.fromModuleName(mt.group(3));
        if (p == null || !p.keyPrefix(0).contains("." + mt.group(2) + ".")) {
          throw new IllegalArgumentException(weights + ": tensor '" + t.name()
              + "' names an unknown module '" + mt.group(2) + "." + mt.group(3) + "'");
        }
        if (!config.targetModules().contains(p)) {
          throw new IllegalArgumentException(weights + ": tensor '" + t.name() + "' adapts "
              + p.moduleName() + " which is not in target_modules " + config.targetModules());
        }
        if (layer >= base.numLayers() || !config.adapts(layer)) {
          throw new IllegalArgumentException(weights + ": tensor '" + t.name() + "' is for layer "
              + layer + " but the base model has " + base.numLayers() + " layers"
              + (config.adapts(layer) ? "" : " and layers_to_transform excludes it"));
        }
        boolean isA = mt.group(4).equals("A");
        long[] want = isA ? new long[] {config.r(), p.inFeatures(base)}
            : new long[] {p.outFeatures(base), config.r()};
        if (!Arrays.equals(t.dims(), want)) {
          throw new IllegalArgumentException(weights + ": tensor '" + t.name() + "' has shape "
              + Arrays.toString(t.dims()) + " but the base model (" + base.modelType() + ", "
              + "hidden " + base.hiddenSize() + ") and r=" + config.r() + " need "
              + Arrays.toString(want) + ": is this adapter for a different base model?");
        }
        float[] values = f.readFloat32(t.name());
        String bad = org.loratransplant.safetensors.FiniteCheck.problem(t.name(), values);
        if (bad != null) {
          throw new IllegalArgumentException(weights + ": " + bad);
        }
        // stored transposed, aT (in, r) and bT (r, out), in contiguous buffers (see transposed)
        NDArray arr = m.create(LoraAdapter.transposed(values, (int) want[0], (int) want[1]),
            new Shape(want[1], want[0]));
        found.computeIfAbsent(new LoraAdapter.Key(layer, p), k -> new NDArray[2])[isA ? 0 : 1] =
            arr;
      }
      Map<LoraAdapter.Key, LoraAdapter.Pair> pairs = new LinkedHashMap<>();
      for (int l = 0; l < base.numLayers(); l++) {
        for (Projection p : config.targetModules()) {
          LoraAdapter.Key k = new LoraAdapter.Key(l, p);
          NDArray[] ab = found.get(k);
          if (!config.adapts(l)) {
            continue;
          }
          if (ab == null || ab[0] == null || ab[1] == null) {
            throw new IllegalArgumentException(weights + ": tensor '"
                + key(k, ab == null || ab[0] == null ? "A" : "B") + "' is missing");
          }
          pairs.put(k, new LoraAdapter.Pair(ab[0], ab[1]));
        }
      }
      return new LoraAdapter(config, base, m, pairs);
    } catch (RuntimeException e) {
      m.close();
      throw e;
    }
  }

  /**
   * Writes the adapter in PEFT's layout. The directory appears complete or not at all: files are
   * written to a temporary sibling directory that is then renamed over {@code dir}.
   */
  public static void write(LoraAdapter adapter, Path dir) {
    write(adapter, dir, Map.of());
  }

  /** As {@link #write(LoraAdapter, Path)}, with extra text files placed in the directory. */
  public static void write(LoraAdapter adapter, Path dir, Map<String, String> extraFiles) {
    Map<String, TensorData> tensors = new LinkedHashMap<>();
    for (Map.Entry<LoraAdapter.Key, LoraAdapter.Pair> e : adapter.pairs().entrySet()) {
      NDArray a = e.getValue().aT().transpose();
      NDArray b = e.getValue().bT().transpose();
      tensors.put(key(e.getKey(), "A"), TensorData.ofFloat32(a.getShape().getShape(),
          a.toFloatArray()));
      tensors.put(key(e.getKey(), "B"), TensorData.ofFloat32(b.getShape().getShape(),
          b.toFloatArray()));
      a.close();
      b.close();
    }
    Path abs = dir.toAbsolutePath();
    Path tmp = abs.resolveSibling("." + abs.getFileName() + ".tmp-" + ProcessHandle.current().pid());
    try {
      deleteRecursively(tmp);
      Files.createDirectories(tmp);
      SafeTensorsWriter.write(tmp.resolve(WEIGHTS_FILE), tensors, Map.of("format", "pt"));
      Files.writeString(tmp.resolve(CONFIG_FILE), configJson(adapter.config()),
          StandardCharsets.UTF_8);
      for (Map.Entry<String, String> e : extraFiles.entrySet()) {
        Files.writeString(tmp.resolve(e.getKey()), e.getValue(), StandardCharsets.UTF_8);
      }
      if (Files.exists(abs)) {
        Path old = abs.resolveSibling("." + abs.getFileName() + ".old-"
            + ProcessHandle.current().pid());
        Files.move(abs, old, StandardCopyOption.ATOMIC_MOVE);
        Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE);
        deleteRecursively(old);
      } else {
        Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE);
      }
    } catch (IOException e) {
      throw new IllegalStateException("cannot write adapter to " + dir + ": " + e.getMessage(), e);
    } finally {
      try {
        deleteRecursively(tmp);
      } catch (IOException ignored) {
        // nothing more to do
      }
    }
  }

  /** adapter_config.json as PEFT 0.12 writes it for these settings. */
  static String configJson(LoraConfig c) {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("alpha_pattern", Map.of());
    m.put("auto_mapping", null);
    m.put("base_model_name_or_path", baseModelField(c.baseModel()));
    m.put("bias", "none");
    m.put("fan_in_fan_out", false);
    m.put("inference_mode", true);
    m.put("init_lora_weights", true);
    m.put("layer_replication", null);
    m.put("layers_pattern", null);
    m.put("layers_to_transform", c.layersToTransform().isEmpty() ? null
        : new ArrayList<>(c.layersToTransform()));
    m.put("loftq_config", Map.of());
    m.put("lora_alpha", c.alpha() == Math.rint(c.alpha()) ? (Object) (long) c.alpha()
        : (Object) c.alpha());
    m.put("lora_dropout", c.dropout());
    m.put("megatron_config", null);
    m.put("megatron_core", "megatron.core");
    m.put("modules_to_save", null);
    m.put("peft_type", "LORA");
    m.put("r", c.r());
    m.put("rank_pattern", Map.of());
    m.put("revision", null);
    List<String> modules = new ArrayList<>();
    for (Projection p : Projection.values()) {
      if (c.targetModules().contains(p)) {
        modules.add(p.moduleName());
      }
    }
    m.put("target_modules", modules);
    m.put("task_type", "CAUSAL_LM");
    m.put("use_dora", false);
    m.put("use_rslora", c.useRslora());
    return PythonJson.dumps(m);
  }

  /**
   * What {@code base_model_name_or_path} records. PEFT's {@code AutoPeftModelForCausalLM
   * .from_pretrained(adapter)} loads the base from this string as given, relative to the
   * <em>reader's</em> working directory, so a path as typed ({@code ../shared/models/stories260K})
   * breaks as soon as the adapter is used from another folder. A base that is a directory here is
   * therefore written as its absolute normalised path, which loads from anywhere on this machine
   * (and names the base unambiguously elsewhere); a hub id or any other name is kept as given.
   */
  static String baseModelField(String baseModel) {
    if (baseModel.isEmpty()) {
      return baseModel;
    }
    try {
      Path p = Path.of(baseModel);
      return Files.isDirectory(p) ? p.toAbsolutePath().normalize().toString() : baseModel;
    } catch (java.nio.file.InvalidPathException e) {
      return baseModel;
    }
  }

  /** Deletes a directory tree (adapter directories, training checkpoints). */
  public static void deleteRecursively(Path p) throws IOException {
    if (!Files.exists(p)) {
      return;
    }
    try (var walk = Files.walk(p)) {
      List<Path> all = new ArrayList<>(walk.toList());
      java.util.Collections.reverse(all);
      for (Path x : all) {
        Files.deleteIfExists(x);
      }
    }
  }

  /** Set of tensor names a written adapter holds (for tests and diagnostics). */
  static Set<String> keys(LoraAdapter adapter) {
    Set<String> s = new HashSet<>();
    adapter.pairs().keySet().forEach(k -> {
      s.add(key(k, "A"));
      s.add(key(k, "B"));
    });
    return s;
  }
}
