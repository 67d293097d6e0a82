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

  private static boolean visible(int query, int key, int window) {
    return key <= query && (window <= 0 || query - key < window);
  }
}
