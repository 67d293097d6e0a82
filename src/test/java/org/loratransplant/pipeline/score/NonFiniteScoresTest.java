package org.loratransplant.pipeline.score;

import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * A row whose log-probs hold NaN or infinity gets a reason naming the model side and the token
 * (it goes to the failed table, beside its sample id, instead of into scored_samples).
 */
class NonFiniteScoresTest {
  @Test
  void aNonFiniteLogProbGivesTheRowAReasonNamingSideAndToken() {
    float[] fine = {-0.5f, -1.25f, -3f};
    assertNull(ScoreStage.nonFinite(fine, fine, 3)); // all finite: no reason
    String e = ScoreStage.nonFinite(new float[] {-0.5f, Float.NaN, -3f}, fine, 3);
    assertTrue(e.startsWith("the expert (source + adapter) log-prob of response token 1 of 3 "
        + "is NaN"), e);
    e = ScoreStage.nonFinite(fine, new float[] {-0.5f, -1f, Float.NEGATIVE_INFINITY}, 3);
    assertTrue(e.startsWith("the base (source without adapter) log-prob of response token 2 of "
        + "3 is -Infinity"), e);
    // Only the response's n tokens count: padding beyond them is not the row's.
    assertNull(ScoreStage.nonFinite(new float[] {-1f, Float.NaN}, new float[] {-1f, Float.NaN},
        1));
  }
}
