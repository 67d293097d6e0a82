package org.loratransplant.select;

/**
 * One response as token selection sees it: per-token excess, vocabulary piece texts and ids (all
 * the same length), and the sample id that seeds random selection.
 */
public record ScoredResponse(long sampleId, float[] excess, String[] pieces, int[] ids) {

  public ScoredResponse {
    if (excess == null || pieces == null || ids == null) {
      throw new IllegalArgumentException("sample " + sampleId + ": excess, pieces and ids are "
          + "all required");
    }
    if (excess.length != ids.length || pieces.length != ids.length) {
      throw new IllegalArgumentException("sample " + sampleId + ": excess (" + excess.length
          + "), pieces (" + pieces.length + ") and ids (" + ids.length + ") differ in length");
    }
    for (int j = 0; j < excess.length; j++) {
      if (Float.isNaN(excess[j])) {
        throw new IllegalArgumentException("sample " + sampleId + ": excess of token " + j
            + " is NaN");
      }
    }
  }
}
