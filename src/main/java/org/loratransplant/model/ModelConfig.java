package org.loratransplant.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * The architecture of a Llama-family decoder, read from a Hugging Face {@code config.json}.
 *
 * <p>llama, mistral and qwen2 share one forward pass; they differ only in which projections carry
 * a bias ({@code attention_bias} for llama adds one to q/k/v/o; qwen2 always has q/k/v biases and
 * none on o), in RoPE scaling (llama3) and in the sliding window (mistral).
 *
 * @param slidingWindow keys further back than this many positions are masked; 0 means none
 */
public record ModelConfig(
    String modelType,
    int hiddenSize,
    int intermediateSize,
    int numLayers,
    int numHeads,
    int numKvHeads,
    int headDim,
    int vocabSize,
    int maxPositions,
    double rmsNormEps,
    double ropeTheta,
    RopeScaling ropeScaling,
    boolean tieWordEmbeddings,
    boolean qkvBias,
    boolean oBias,
    boolean mlpBias,
    int slidingWindow,
    int bosTokenId,
    List<Integer> eosTokenIds) {

  public static final Set<String> SUPPORTED_TYPES = Set.of("llama", "mistral", "qwen2");
  private static final ObjectMapper JSON = new ObjectMapper();

  public ModelConfig {
    eosTokenIds = List.copyOf(eosTokenIds);
  }

  /**
   * Multiply-adds of one position's products: every layer's q, k, v, o, gate, up and down, and
   * the LM head (what a forward costs per token, attention aside).
   */
  public long productMacsPerPosition() {
    long q = (long) numHeads * headDim;
    long kv = (long) numKvHeads * headDim;
    long perLayer = (long) hiddenSize * (q + 2 * kv) + q * hiddenSize
        + 3L * hiddenSize * intermediateSize;
    return perLayer * numLayers + (long) vocabSize * hiddenSize;
  }

  /** Number of query heads that share one key/value head (grouped-query attention). */
  public int groupSize() {
    return numHeads / numKvHeads;
  }

  /** Reads {@code config.json} (and {@code generation_config.json} for eos ids) from a model dir. */
  public static ModelConfig load(Path modelDir) {
    Path file = modelDir.resolve("config.json");
    if (!Files.isRegularFile(file)) {
      throw new ModelConfigException(
          "not a Hugging Face model directory: " + file + " does not exist");
    }
    JsonNode root = readJson(file);
    Fields f = new Fields(file, root);
    String type = f.string("model_type");
    if (!SUPPORTED_TYPES.contains(type)) {
      throw new ModelConfigException(
          file + ": model_type '" + type + "' is not supported (supported: llama, mistral, qwen2)");
    }
    String act = root.path("hidden_act").asText("silu");
    if (!act.equals("silu")) {
      throw new ModelConfigException(file + ": hidden_act '" + act + "' is not supported (silu)");
    }
    int hidden = f.positiveInt("hidden_size");
    int heads = f.positiveInt("num_attention_heads");
    int kvHeads = root.has("num_key_value_heads") && !root.get("num_key_value_heads").isNull()
        ? f.positiveInt("num_key_value_heads") : heads;
    if (heads % kvHeads != 0) {
      throw new ModelConfigException(file + ": num_attention_heads " + heads
          + " is not a multiple of num_key_value_heads " + kvHeads);
    }
    int headDim = root.has("head_dim") && !root.get("head_dim").isNull()
        ? f.positiveInt("head_dim") : hidden / heads;
    if (!root.has("head_dim") && hidden % heads != 0) {
      throw new ModelConfigException(file + ": hidden_size " + hidden
          + " is not divisible by num_attention_heads " + heads + " and head_dim is not given");
    }
    if (headDim % 2 != 0) {
      throw new ModelConfigException(file + ": head_dim " + headDim + " must be even for RoPE");
    }
    boolean attentionBias = root.path("attention_bias").asBoolean(false);
    boolean qwen2 = type.equals("qwen2");
    int window = 0;
    JsonNode sw = root.get("sliding_window");
    boolean useWindow = qwen2 ? root.path("use_sliding_window").asBoolean(false) : true;
    if (useWindow && sw != null && !sw.isNull()) {
      window = f.positiveInt("sliding_window");
    }
    List<Integer> eos = generationEos(modelDir, root, file);
    return new ModelConfig(
        type,
        hidden,
        f.positiveInt("intermediate_size"),
        f.positiveInt("num_hidden_layers"),
        heads,
        kvHeads,
        headDim,
        f.positiveInt("vocab_size"),
        root.path("max_position_embeddings").asInt(2048),
        root.path("rms_norm_eps").asDouble(1e-6),
        root.path("rope_theta").asDouble(10000.0),
        RopeScaling.parse(root.get("rope_scaling"), file),
        root.path("tie_word_embeddings").asBoolean(false),
        qwen2 || attentionBias,
        !qwen2 && attentionBias,
        root.path("mlp_bias").asBoolean(false),
        window,
        root.path("bos_token_id").asInt(1),
        eos);
  }

  /** eos ids: generation_config.json wins (it may list several), else config.json. */
  private static List<Integer> generationEos(Path modelDir, JsonNode config, Path configFile) {
    Path gen = modelDir.resolve("generation_config.json");
    if (Files.isRegularFile(gen)) {
      JsonNode node = readJson(gen).get("eos_token_id");
      if (node != null && !node.isNull()) {
        return ids(node, gen);
      }
    }
    JsonNode node = config.get("eos_token_id");
    return node == null || node.isNull() ? List.of() : ids(node, configFile);
  }

  private static List<Integer> ids(JsonNode node, Path file) {
    List<Integer> out = new ArrayList<>();
    if (node.isInt()) {
      out.add(node.asInt());
    } else if (node.isArray()) {
      for (JsonNode n : node) {
        if (!n.isInt()) {
          throw new ModelConfigException(file + ": eos_token_id entries must be integers: " + node);
        }
        out.add(n.asInt());
      }
    } else {
      throw new ModelConfigException(file + ": eos_token_id must be an integer or a list: " + node);
    }
    return out;
  }

  static JsonNode readJson(Path file) {
    try {
      JsonNode root = JSON.readTree(file.toFile());
      if (root == null || !root.isObject()) {
        throw new ModelConfigException(file + ": expected a JSON object");
      }
      return root;
    } catch (IOException e) {
      throw new ModelConfigException(file + ": not valid JSON: " + e.getMessage(), e);
    }
  }

  /** Required-field access that names the file and field in every error. */
  private record Fields(Path file, JsonNode root) {
    String string(String name) {
      JsonNode n = root.get(name);
      if (n == null || !n.isTextual()) {
        throw new ModelConfigException(file + ": missing or non-string field '" + name + "'");
      }
      return n.asText();
    }

    int positiveInt(String name) {
      JsonNode n = root.get(name);
      if (n == null || !n.canConvertToInt() || !n.isIntegralNumber() || n.asInt() <= 0) {
        throw new ModelConfigException(
            file + ": field '" + name + "' must be a positive integer, got " + n);
      }
      return n.asInt();
    }
  }
}
