package org.loratransplant.model;

/**
 * Additive attention masks, built in Java and handed to the forward pass as one tensor: 0 where a
 * query may attend to a key, {@link #BLOCKED} where not. A finite value (not -inf) keeps rows with
 * no visible key (left-padding queries) free of NaN; their outputs are never read.
 */
final class AttentionMasks {
  static final float BLOCKED = -1e9f;

  private AttentionMasks() {}

  /**
   * Causal mask for T queries at positions {@code offset..offset+T-1} over S = offset + T keys,
   * shared by every row of a right-padded batch: {@code (1, 1, 1, T, S)} flattened.
   */
  static float[] causal(int t, int offset, int window) {
    int s = offset + t;
    float[] m = new float[t * s];
    for (int i = 0; i < t; i++) {
      int q = offset + i;
      for (int j = 0; j < s; j++) {
        m[i * s + j] = visible(q, j, window) ? 0f : BLOCKED;
      }
    }
    return m;
  }

  /**
   * Per-row mask for a left-padded batch: row r's first {@code pad[r]} key slots are padding.
   * Queries are the T slots {@code offset..offset+T-1}; {@code (B, 1, 1, T, S)} flattened.
   */
  static float[] leftPadded(int[] pad, int t, int offset, int window) {
    int s = offset + t;
    float[] m = new float[pad.length * t * s];
    for (int r = 0; r < pad.length; r++) {
      for (int i = 0; i < t; i++) {
        int q = offset + i;
        for (int j = 0; j < s; j++) {
          // Positions, not slots, decide the window: both shift by the row's padding.
          boolean ok = j >= pad[r] && visible(q - pad[r], j - pad[r], window);
          m[(r * t + i) * s + j] = ok ? 0f : BLOCKED;
        }
      }
    }
    return m;
  }

  /**
   * One query per row of a continuously batched cache ({@link ContinuousBatch}): row r's
   * request sits at slots {@code start[r]..slot[r]} (slot r is its query's; key j is at position
   * {@code j - start[r]}); a row with {@code slot[r] < 0} is idle and sees nothing. {@code
   * (B, 1, 1, 1, S)} flattened.
   */
  static float[] rows(int[] start, int[] slot, int s, int window) {
    float[] m = new float[start.length * s];
    java.util.Arrays.fill(m, BLOCKED);
    for (int r = 0; r < start.length; r++) {
      for (int j = start[r]; j <= slot[r]; j++) {
        if (visible(slot[r] - start[r], j - start[r], window)) {
          m[r * s + j] = 0f;
        }
      }
    }
    return m;
  }

  private static boolean visible(int query, int key, int window) {
    return key <= query && (window <= 0 || query - key < window);
  }
}
