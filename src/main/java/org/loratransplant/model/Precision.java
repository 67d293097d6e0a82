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
 * float32. {@code F16} is the same with IEEE float16 (10 mantissa bits to bf16's 7, a range of
 * +-65504): a float16 checkpoint loaded in F16 keeps its exact values at half float32's memory,
 * which is what GPUs without bf16 units, and float16 checkpoints anywhere, want; on a CPU it
 * computes at float32's speed (no AMX-FP16 here), so it saves memory only. Weights beyond its
 * range are refused at load. {@code AUTO} is a request, not a format: it becomes FP32, BF16 or
 * F16 when a model loads ({@link AutoPrecision}), so a model never computes in it.
 */
public enum Precision {
  FP32,
  BF16,
  F16,
  AUTO;

  /** fp32, bf16, f16 or auto (any case, or their long names); else refused naming where. */
  public static Precision parse(String value, String where) {
    return switch (value.toLowerCase(Locale.ROOT)) {
      case "fp32", "float32" -> FP32;
      case "bf16", "bfloat16" -> BF16;
      case "f16", "fp16", "float16", "half" -> F16;
      case "auto" -> AUTO;
      default -> throw new IllegalArgumentException(where + " must be fp32, bf16, f16 or auto, "
          + "got '" + value + "'");
    };
  }

  /**
   * This, or for {@code AUTO} the format {@link AutoPrecision} picks for the model here;
   * {@code f16Checkpoint}: whether the checkpoint stores its products in float16.
   */
  public Precision resolve(ModelConfig config, ai.djl.Device device, boolean f16Checkpoint) {
    return this == AUTO ? AutoPrecision.choose(config, device, f16Checkpoint).precision() : this;
  }

  /** Whether the products run in a 16-bit format (BF16 or F16). */
  public boolean half() {
    return this == BF16 || this == F16;
  }

  /** The name users write: {@code fp32}, {@code bf16}, {@code f16} or {@code auto}. */
  public String label() {
    return name().toLowerCase(Locale.ROOT);
  }
}
