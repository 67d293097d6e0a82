package org.loratransplant.pipeline.score;

import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * A row whose log-probs hold NaN or infinity gets a reason naming its sample id, side and token
 * (it goes to the failed table instead of into scored_samples).
 */
class NonFiniteScoresTest {
  @Test
  void aNonFiniteLogProbGivesTheRowAReasonNamingTheSample() {
    float[] fine = {-0.5f, -1.25f, -3f};
    assertNull(ScoreStage.nonFinite(41, fine, fine, 3)); // all finite: no reason
    String e = ScoreStage.nonFinite(42, new float[] {-0.5f, Float.NaN, -3f}, fine, 3);
    assertTrue(e.contains("sample_id 42"), e);
    assertTrue(e.contains("expert") && e.contains("token 1 of 3") && e.contains("NaN"), e);
    e = ScoreStage.nonFinite(7, fine, new float[] {-0.5f, -1f, Float.NEGATIVE_INFINITY}, 3);
    assertTrue(e.contains("sample_id 7") && e.contains("base") && e.contains("token 2")
        && e.contains("-Infinity"), e);
    // Only the response's n tokens count: padding beyond them is not the row's.
    assertNull(ScoreStage.nonFinite(8, new float[] {-1f, Float.NaN}, new float[] {-1f, Float.NaN},
        1));
  }
}
