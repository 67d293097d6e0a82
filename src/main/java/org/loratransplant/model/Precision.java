package org.loratransplant.model;

import java.util.Locale;

/**
 * The number format of the products. {@code FP32} computes everything in float32 (the parity
 * tests' oracle). {@code BF16} runs the LM head and every layer's four products with bf16
 * inputs and weights and float32 accumulation (oneDNN's AMX / AVX512-BF16 kernels, several
 * times float32's speed where the CPU has them); norms, attention, softmax, RoPE, adapters
 * beside the weights and the residual stream stay float32. A model loaded in BF16 ({@link
 * LlamaModel#load(java.nio.file.Path, ai.djl.Device, Precision)}) stores those weights in bf16
 * alone, so its training products run in bf16 too; a float32 model set to BF16 afterwards
 * ({@link LanguageModel#setPrecision}) gives its inference decoders bf16 copies and trains in
 * float32. {@code AUTO} is a request, not a format: it becomes FP32 or BF16 when a model loads
 * ({@link AutoPrecision}), so a model never computes in it.
 */
public enum Precision {
  FP32,
  BF16,
  AUTO;

  /** {@code fp32}, {@code bf16} or {@code auto} (any case); else refused naming {@code where}. */
  public static Precision parse(String value, String where) {
    return switch (value.toLowerCase(Locale.ROOT)) {
      case "fp32", "float32" -> FP32;
      case "bf16", "bfloat16" -> BF16;
      case "auto" -> AUTO;
      default -> throw new IllegalArgumentException(where + " must be fp32, bf16 or auto, got '"
          + value + "'");
    };
  }

  /** This, or for {@code AUTO} the format {@link AutoPrecision} picks for the model here. */
  public Precision resolve(ModelConfig config, ai.djl.Device device) {
    return this == AUTO ? AutoPrecision.choose(config, device).precision() : this;
  }

  /** The name users write: {@code fp32}, {@code bf16} or {@code auto}. */
  public String label() {
    return name().toLowerCase(Locale.ROOT);
  }
}
