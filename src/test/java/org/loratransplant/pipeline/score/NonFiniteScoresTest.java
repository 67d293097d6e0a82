package org.loratransplant.pipeline.score;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** A row whose log-probs hold NaN or infinity fails, naming its sample id, side and token. */
class NonFiniteScoresTest {
  @Test
  void aNonFiniteLogProbFailsTheRowNamingTheSample() {
    float[] fine = {-0.5f, -1.25f, -3f};
    ScoreStage.checkFinite(41, fine, fine, 3); // all finite: no error
    IllegalStateException e = assertThrows(IllegalStateException.class,
        () -> ScoreStage.checkFinite(42, new float[] {-0.5f, Float.NaN, -3f}, fine, 3));
    assertTrue(e.getMessage().contains("sample_id 42"), e.getMessage());
    assertTrue(e.getMessage().contains("expert") && e.getMessage().contains("token 1 of 3")
        && e.getMessage().contains("NaN"), e.getMessage());
    e = assertThrows(IllegalStateException.class, () -> ScoreStage.checkFinite(7, fine,
        new float[] {-0.5f, -1f, Float.NEGATIVE_INFINITY}, 3));
    assertTrue(e.getMessage().contains("sample_id 7") && e.getMessage().contains("base")
        && e.getMessage().contains("token 2") && e.getMessage().contains("-Infinity"),
        e.getMessage());
    // Only the response's n tokens count: padding beyond them is not the row's.
    ScoreStage.checkFinite(8, new float[] {-1f, Float.NaN}, new float[] {-1f, Float.NaN}, 1);
  }
}
