package org.loratransplant.transfer;

/** Which source layer feeds each target layer. */
public final class LayerMap {
  private LayerMap() {}

  /**
   * By relative depth: target layer j of T takes source layer {@code round(j (S-1) / (T-1))} of
   * S, so first maps to first and last to last; equal depths map one to one. A one-layer target
   * takes the middle source layer.
   */
  public static int[] byRelativeDepth(int sourceLayers, int targetLayers) {
    if (sourceLayers < 1 || targetLayers < 1) {
      throw new IllegalArgumentException("layer counts must be positive, got " + sourceLayers
          + " and " + targetLayers);
    }
    int[] map = new int[targetLayers];
    for (int j = 0; j < targetLayers; j++) {
      map[j] = targetLayers == 1 ? (sourceLayers - 1) / 2
          : (int) Math.round(j * (sourceLayers - 1) / (double) (targetLayers - 1));
    }
    return map;
  }
}
