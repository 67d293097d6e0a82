package org.loratransplant.select;

/**
 * A scored sample offered to the sample filter.
 *
 * @param label the sample's answer class (e.g. "False"), normalised by the caller; only the
 *     class-balanced filter reads it
 */
public record Candidate(long sampleId, double meanExcess, String label) {

  public Candidate {
    if (Double.isNaN(meanExcess)) {
      throw new IllegalArgumentException("sample " + sampleId + ": mean excess is NaN");
    }
  }
}
