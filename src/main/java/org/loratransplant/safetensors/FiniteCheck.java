package org.loratransplant.safetensors;

/**
 * The check that loaded weights hold no NaN or infinity. One such value poisons every activation
 * downstream: generation then prints nothing (the sampler sees NaN logits) and log-probs are all
 * NaN, with no error anywhere. Checked once per tensor at load, a single pass over the floats
 * already in memory (cheaper than a copy).
 */
public final class FiniteCheck {
  private FiniteCheck() {}

  /** The index of the first NaN or infinite value, or -1 when all are finite. */
  public static int firstNonFinite(float[] values) {
    for (int i = 0; i < values.length; i++) {
      // (v - v) is 0 for finite v and NaN for NaN and +-Inf: one comparison per value.
      float v = values[i];
      if (v - v != 0f) {
        return i;
      }
    }
    return -1;
  }

  /**
   * Null when every value is finite, else a message fragment: "tensor 'name' holds NaN at index
   * 5 of 64 (2 non-finite values)".
   */
  public static String problem(String tensor, float[] values) {
    int first = firstNonFinite(values);
    if (first < 0) {
      return null;
    }
    int count = 0;
    for (int i = first; i < values.length; i++) {
      if (!Float.isFinite(values[i])) {
        count++;
      }
    }
    return "tensor '" + tensor + "' holds " + values[first] + " at index " + first + " of "
        + values.length + " (" + count + " non-finite value" + (count == 1 ? "" : "s")
        + "): the file is corrupt or the training that wrote it diverged";
  }
}
