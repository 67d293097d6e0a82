package org.loratransplant.model;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;

/**
 * RoPE frequency scaling. Only Llama 3's scheme is supported: low frequencies (long wavelengths)
 * are divided by {@code factor}, high ones kept, and the band between is interpolated smoothly.
 * A {@code null} instance means plain RoPE.
 */
public record RopeScaling(
    double factor, double lowFreqFactor, double highFreqFactor, int originalMaxPositions) {

  static RopeScaling parse(JsonNode node, Path file) {
    if (node == null || node.isNull()) {
      return null;
    }
    String type = node.has("rope_type") ? node.get("rope_type").asText() : node.path("type").asText();
    if (type.equals("default")) {
      return null;
    }
    if (!type.equals("llama3")) {
      throw new ModelConfigException(
          file + ": rope_scaling type '" + type + "' is not supported (llama3 or none)");
    }
    for (String f : new String[] {"factor", "low_freq_factor", "high_freq_factor",
        "original_max_position_embeddings"}) {
      if (!node.has(f) || !node.get(f).isNumber()) {
        throw new ModelConfigException(file + ": rope_scaling." + f + " is missing or not a number");
      }
    }
    return new RopeScaling(node.get("factor").asDouble(), node.get("low_freq_factor").asDouble(),
        node.get("high_freq_factor").asDouble(),
        node.get("original_max_position_embeddings").asInt());
  }

  /**
   * The inverse frequencies for one head, computed in float32 like transformers 4.44 does
   * ({@code 1 / theta^(2i/d)}, then the llama3 rewrite), so the tables match HF bit for bit.
   */
  public static float[] inverseFrequencies(int headDim, double theta, RopeScaling scaling) {
    int half = headDim / 2;
    float[] inv = new float[half];
    for (int i = 0; i < half; i++) {
      float exponent = (float) (2 * i) / (float) headDim;
      inv[i] = 1.0f / (float) Math.pow(theta, exponent);
    }
    if (scaling == null) {
      return inv;
    }
    double lowWavelen = scaling.originalMaxPositions / scaling.lowFreqFactor;
    double highWavelen = scaling.originalMaxPositions / scaling.highFreqFactor;
    for (int i = 0; i < half; i++) {
      float f = inv[i];
      float wavelen = (float) (2 * Math.PI) / f;
      if (wavelen > lowWavelen) {
        inv[i] = (float) (f / scaling.factor);
      } else if (wavelen >= highWavelen) {
        float smooth = (float) ((scaling.originalMaxPositions / wavelen - scaling.lowFreqFactor)
            / (scaling.highFreqFactor - scaling.lowFreqFactor));
        inv[i] = (float) ((1 - smooth) * (f / scaling.factor) + smooth * f);
      }
    }
    return inv;
  }
}
