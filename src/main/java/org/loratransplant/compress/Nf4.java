package org.loratransplant.compress;

/**
 * 4-bit NormalFloat as QLoRA (Dettmers et al. 2023) defines it and bitsandbytes implements it
 * ({@code quantize_4bit(quant_type="nf4", blocksize=64, compress_statistics=True)}): per block of
 * 64 values the absmax scales the block into [-1, 1] and each value becomes the index of the
 * nearest of the 16 {@link #LEVELS}; two indices per byte, the first in the high nibble. The
 * fp32 absmax of each block is itself double-quantised: its mean is subtracted and the rest is
 * quantised to 8 bits with {@link DynamicCode} in blocks of 256, which costs 8/64 + 32/(64*256)
 * = 0.127 bits per weight instead of 0.5.
 */
public final class Nf4 {
  public static final int BLOCK = 64;
  public static final int SECOND_BLOCK = 256;

  /**
   * bitsandbytes' NF4 table ({@code get_4bit_type("nf4")}, the QLoRA paper's appendix): the
   * quantiles of N(0, 1) from {@code create_normal_map(offset=0.9677083)}, normalised to [-1, 1],
   * with an exact zero. As float32, exactly the published constants.
   */
  public static final float[] LEVELS = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

  private Nf4() {}

  /**
   * A quantised tensor.
   *
   * @param packed {@code ceil(length / 2)} bytes of 4-bit level indices, high nibble first
   * @param length number of values
   * @param absmaxCodes one byte per block of {@link #BLOCK}: the {@link DynamicCode} index of
   *     {@code absmax - offset} in its second-level block
   * @param absmax2 one float per {@link #SECOND_BLOCK} blocks: the second-level scale
   * @param offset the mean of the blocks' absmax, subtracted before the second level
   */
  public record Quantized(byte[] packed, int length, byte[] absmaxCodes, float[] absmax2,
      float offset) {

    /** Level index of value {@code i}. */
    public int code(int i) {
      int b = packed[i >> 1] & 0xFF;
      return (i & 1) == 0 ? b >>> 4 : b & 0x0F;
    }

    /** The per-block absmax after double quantisation (what dequantisation multiplies by). */
    public float[] blockScales() {
      float[] s = new float[absmaxCodes.length];
      for (int b = 0; b < s.length; b++) {
        s[b] = DynamicCode.CODE[absmaxCodes[b] & 0xFF] * absmax2[b / SECOND_BLOCK] + offset;
      }
      return s;
    }

    public float[] dequantize() {
      float[] scales = blockScales();
      float[] out = new float[length];
      for (int i = 0; i < length; i++) {
        out[i] = LEVELS[code(i)] * scales[i / BLOCK];
      }
      return out;
    }
  }

  /** Index of the level nearest {@code x} (x in [-1, 1]; ties to the lower level). */
  public static int nearestLevel(float x) {
    return DynamicCode.nearest(LEVELS, x);
  }

  /** Quantises {@code w} (row-major, any shape) in blocks of 64 with double quantisation. */
  public static Quantized quantize(float[] w) {
    int blocks = (w.length + BLOCK - 1) / BLOCK;
    float[] absmax = new float[blocks];
    byte[] packed = new byte[(w.length + 1) / 2];
    for (int b = 0; b < blocks; b++) {
      int from = b * BLOCK;
      int to = Math.min(w.length, from + BLOCK);
      float m = 0;
      for (int i = from; i < to; i++) {
        m = Math.max(m, Math.abs(w[i]));
      }
      absmax[b] = m;
      for (int i = from; i < to; i++) {
        int q = nearestLevel(m == 0 ? 0 : w[i] / m);
        packed[i >> 1] |= (byte) ((i & 1) == 0 ? q << 4 : q);
      }
    }
    double sum = 0;
    for (float a : absmax) {
      sum += a;
    }
    float offset = blocks == 0 ? 0 : (float) (sum / blocks);
    float[] centred = new float[blocks];
    for (int b = 0; b < blocks; b++) {
      centred[b] = absmax[b] - offset;
    }
    DynamicCode.Quantized second = DynamicCode.quantize(centred, SECOND_BLOCK);
    return new Quantized(packed, w.length, second.codes(), second.absmax(), offset);
  }
}
