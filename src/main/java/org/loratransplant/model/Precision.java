package org.loratransplant.model;

import java.util.Locale;

/**
 * The number format of the inference products ({@link FusedDecoder}). {@code FP32} computes
 * everything in float32 (the parity tests' oracle). {@code BF16} keeps a bf16 copy of the LM
 * head and of every layer's four product weights and runs those products with bf16 inputs and
 * float32 accumulation (oneDNN's AMX / AVX512-BF16 kernels, several times float32's speed where
 * the CPU has them); norms, attention, softmax, RoPE, adapters beside the weights and the
 * residual stream stay float32. Training always runs in float32.
 */
public enum Precision {
  FP32,
  BF16;

  /** {@code fp32} or {@code bf16} (any case); anything else is refused naming {@code where}. */
  public static Precision parse(String value, String where) {
    return switch (value.toLowerCase(Locale.ROOT)) {
      case "fp32", "float32" -> FP32;
      case "bf16", "bfloat16" -> BF16;
      default -> throw new IllegalArgumentException(where + " must be fp32 or bf16, got '"
          + value + "'");
    };
  }

  /** The name users write: {@code fp32} or {@code bf16}. */
  public String label() {
    return name().toLowerCase(Locale.ROOT);
  }
}
