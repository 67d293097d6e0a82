package org.loratransplant.safetensors;

/**
 * Exact conversions between {@code float} and the two 16-bit float formats of checkpoints.
 *
 * <p>{@code Float.float16ToFloat} only exists from Java 20, and BF16 has no JDK support at all.
 * Widening (16 to 32 bits) is exact for both formats. Narrowing rounds to nearest, ties to even,
 * as PyTorch and NumPy do, so values written here match what {@code tensor.half()} or {@code
 * tensor.bfloat16()} would store. NaNs stay NaNs (sign and the top payload bits kept, quiet bit
 * set); infinities stay infinities.
 */
public final class HalfFloats {
  private HalfFloats() {}

  /**
   * IEEE 754 binary16 to float, exact, including subnormals, signed zeros, infinities and NaN.
   *
   * @param half the 16 bits of a half-precision value
   * @return the same value as a float
   */
  public static float halfToFloat(short half) {
    int h = half & 0xFFFF;
    int sign = (h & 0x8000) << 16;
    int exp = (h >>> 10) & 0x1F;
    int mant = h & 0x3FF;
    if (exp == 0x1F) { // infinity (mant == 0) or NaN; the payload moves to the top of the float's
      return Float.intBitsToFloat(sign | 0x7F80_0000 | (mant << 13));
    }
    if (exp == 0) {
      // Zero or subnormal: mant * 2^-24. Both factors are exact floats and the product needs at
      // most 10 significant bits, so the multiplication is exact.
      float magnitude = mant * 0x1p-24f;
      return sign == 0 ? magnitude : -magnitude;
    }
    // Normal: re-bias the exponent (15 -> 127) and widen the 10-bit mantissa to 23 bits.
    return Float.intBitsToFloat(sign | ((exp + (127 - 15)) << 23) | (mant << 13));
  }

  /**
   * Float to IEEE 754 binary16, rounding to nearest even. Values beyond the half range (max
   * 65504) become infinity, tiny values become subnormals or signed zero.
   *
   * @param value a float
   * @return the 16 bits of the nearest half-precision value
   */
  public static short floatToHalf(float value) {
    int bits = Float.floatToRawIntBits(value);
    int sign = (bits >>> 16) & 0x8000;
    int exp = (bits >>> 23) & 0xFF;
    int mant = bits & 0x7F_FFFF;
    if (exp == 0xFF) {
      if (mant == 0) {
        return (short) (sign | 0x7C00);
      }
      return (short) (sign | 0x7C00 | 0x200 | (mant >>> 13)); // quiet bit keeps it a NaN
    }
    int halfExp = exp - 127 + 15;
    if (halfExp >= 0x1F) {
      return (short) (sign | 0x7C00);
    }
    if (halfExp >= 1) {
      // Normal half. A carry out of the mantissa correctly bumps the exponent, up to infinity.
      int rounded = roundShiftRightEven(mant, 13);
      return (short) (sign | ((halfExp << 10) + rounded));
    }
    if (exp == 0) {
      return (short) sign; // float subnormals are far below half's smallest subnormal (2^-24)
    }
    // Subnormal half: the value in units of 2^-24 is significand >> (126 - exp). From 25 bits
    // of shift on, the value is below half a unit and rounds to zero.
    int shift = 126 - exp;
    if (shift >= 25) {
      return (short) sign;
    }
    int significand = mant | 0x80_0000;
    return (short) (sign | roundShiftRightEven(significand, shift)); // may carry to 0x0400: ok
  }

  /**
   * BF16 (the upper half of a float's bits) to float: exact.
   *
   * @param bf16 the 16 bits of a bfloat16 value
   * @return the same value as a float
   */
  public static float bf16ToFloat(short bf16) {
    return Float.intBitsToFloat((bf16 & 0xFFFF) << 16);
  }

  /**
   * Float to BF16, rounding to nearest even; overflow gives infinity.
   *
   * @param value a float
   * @return the 16 bits of the nearest bfloat16 value
   */
  public static short floatToBf16(float value) {
    int bits = Float.floatToRawIntBits(value);
    if ((bits & 0x7F80_0000) == 0x7F80_0000 && (bits & 0x7F_FFFF) != 0) {
      // NaN: plain truncation could drop every payload bit and turn it into infinity.
      return (short) ((bits >>> 16) | 0x40);
    }
    int lsb = (bits >>> 16) & 1;
    return (short) ((bits + 0x7FFF + lsb) >>> 16);
  }

  /** {@code value >> shift} rounded to nearest, ties to even; {@code 1 <= shift <= 30}. */
  private static int roundShiftRightEven(int value, int shift) {
    int kept = value >>> shift;
    int rest = value & ((1 << shift) - 1);
    int halfway = 1 << (shift - 1);
    if (rest > halfway || (rest == halfway && (kept & 1) == 1)) {
      kept++;
    }
    return kept;
  }
}
