package org.loratransplant.compress;

/**
 * bitsandbytes' 8-bit "dynamic" code ({@code create_dynamic_map(signed=True, max_exponent_bits=7,
 * total_bits=8)}), the 256 values QLoRA's double quantisation uses for the second level, and the
 * block-wise absmax quantiser over it ({@code quantize_blockwise}: per block, divide by the
 * block's absmax and take the nearest code).
 */
public final class DynamicCode {
  /** The 256 code values, ascending; in [-1, 1] with 0 and 1 exactly. */
  public static final float[] CODE = build();

  private DynamicCode() {}

  /**
   * As bitsandbytes builds it: for exponent {@code i = 0..6}, the midpoints of
   * {@code linspace(0.1, 1, 2^i + 1)} times {@code 10^(i - 6)}, with both signs; then 0 and 1.
   * 127 + 127 + 2 = 256 values, sorted.
   */
  private static float[] build() {
    float[] data = new float[256];
    int n = 0;
    for (int i = 0; i < 7; i++) {
      int items = (1 << i) + 1;
      double scale = Math.pow(10, -6 + i);
      for (int j = 0; j + 1 < items; j++) {
        double lo = 0.1 + 0.9 * j / (items - 1);
        double hi = 0.1 + 0.9 * (j + 1) / (items - 1);
        float mean = (float) ((lo + hi) / 2);
        data[n++] = (float) (scale * mean);
        data[n++] = (float) (-scale * mean);
      }
    }
    data[n++] = 0f;
    data[n++] = 1f;
    if (n != 256) {
      throw new AssertionError("dynamic code has " + n + " values");
    }
    java.util.Arrays.sort(data);
    return data;
  }

  /** Index of the code value nearest {@code x} (ties to the lower index). */
  public static int nearest(float[] code, float x) {
    int lo = 0;
    int hi = code.length - 1;
    while (hi - lo > 1) {
      int mid = (lo + hi) >>> 1;
      if (code[mid] <= x) {
        lo = mid;
      } else {
        hi = mid;
      }
    }
    return Math.abs(x - code[lo]) <= Math.abs(code[hi] - x) ? lo : hi;
  }

  /**
   * Block-wise quantisation over {@link #CODE}.
   *
   * @param codes one byte per value, the index into {@link #CODE}
   * @param absmax one float per block of {@code blockSize} values (the last block may be short)
   */
  public record Quantized(byte[] codes, float[] absmax, int blockSize) {
    public float[] dequantize() {
      float[] out = new float[codes.length];
      for (int i = 0; i < out.length; i++) {
        out[i] = CODE[codes[i] & 0xFF] * absmax[i / blockSize];
      }
      return out;
    }
  }

  public static Quantized quantize(float[] x, int blockSize) {
    int blocks = (x.length + blockSize - 1) / blockSize;
    byte[] codes = new byte[x.length];
    float[] absmax = new float[blocks];
    for (int b = 0; b < blocks; b++) {
      int from = b * blockSize;
      int to = Math.min(x.length, from + blockSize);
      float m = 0;
      for (int i = from; i < to; i++) {
        m = Math.max(m, Math.abs(x[i]));
      }
      absmax[b] = m;
      for (int i = from; i < to; i++) {
        codes[i] = (byte) nearest(CODE, m == 0 ? 0 : x[i] / m);
      }
    }
    return new Quantized(codes, absmax, blockSize);
  }
}
