package org.loratransplant.compress;

/**
 * Symmetric int8 per output channel (one scale per row of a {@code (out, in)} weight): scale =
 * absmax / 127, code = round(w / scale) in [-127, 127]. The error is at most scale / 2 per value.
 */
public final class Int8 {
  private Int8() {}

  /**
   * @param codes {@code rows * cols} signed bytes, row-major
   * @param scales one per row
   */
  public record Quantized(byte[] codes, float[] scales, int rows, int cols) {
    public float[] dequantize() {
      float[] out = new float[codes.length];
      for (int i = 0; i < out.length; i++) {
        out[i] = codes[i] * scales[i / cols];
      }
      return out;
    }
  }

  public static Quantized quantize(float[] w, int rows, int cols) {
    if ((long) rows * cols != w.length) {
      throw new IllegalArgumentException(w.length + " values are not " + rows + " x " + cols);
    }
    byte[] codes = new byte[w.length];
    float[] scales = new float[rows];
    for (int r = 0; r < rows; r++) {
      float m = 0;
      for (int c = 0; c < cols; c++) {
        m = Math.max(m, Math.abs(w[r * cols + c]));
      }
      float s = m / 127f;
      scales[r] = s;
      for (int c = 0; c < cols; c++) {
        int q = s == 0 ? 0 : Math.round(w[r * cols + c] / s);
        codes[r * cols + c] = (byte) Math.max(-127, Math.min(127, q));
      }
    }
    return new Quantized(codes, scales, rows, cols);
  }
}
