package org.loratransplant.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

class MeanOverSeedsTest {

  private static ResultRow row(String method, int seed, double v, double lo, double hi) {
    return new ResultRow("arith", "src", "tgt", method, seed, "exact_match", v, lo, hi, 50);
  }

  @Test
  void tIntervalOverThreeSeedsMatchesTheHandComputation() {
    List<MeanOverSeeds.Summary> s = MeanOverSeeds.of(List.of(row("titok", 3, 0.4, 0.3, 0.5),
        row("titok", 1, 0.2, 0.1, 0.3), row("titok", 2, 0.3, 0.2, 0.4)));
    assertEquals(1, s.size());
    MeanOverSeeds.Summary t = s.get(0);
    // mean 0.3, sample sd 0.1, se 0.1 / sqrt(3), t_{0.975, 2} = 4.303
    double half = 4.303 * 0.1 / Math.sqrt(3);
    assertEquals(0.3, t.mean(), 1e-12);
    assertEquals(0.3 - half, t.lo(), 1e-12);
    assertEquals(0.3 + half, t.hi(), 1e-12);
    assertEquals(3, t.nSeeds());
    assertEquals(List.of(1, 2, 3), t.seeds());
    assertTrue(t.overSeeds());
  }

  @Test
  void oneSeedKeepsTheRunsOwnInterval() {
    List<MeanOverSeeds.Summary> s = MeanOverSeeds.of(List.of(row("vanilla", 0, 0.14, 0.07,
        0.26), row("titok", 1, 0.2, 0.1, 0.3), row("titok", 2, 0.4, 0.3, 0.5)));
    MeanOverSeeds.Summary v = MeanOverSeeds.find(s, "arith", "tgt", "vanilla", "exact_match");
    assertEquals(0.14, v.mean());
    assertEquals(0.07, v.lo());
    assertEquals(0.26, v.hi());
    assertEquals(1, v.nSeeds());
    // two seeds: t_{0.975,1} = 12.706, sd = 0.1 * sqrt(2), se = 0.1
    MeanOverSeeds.Summary t = MeanOverSeeds.find(s, "arith", "tgt", "titok", "exact_match");
    assertEquals(0.3 - 12.706 * 0.1, t.lo(), 1e-12);
  }

  @Test
  void refusesTwoResultsForOneSeed() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> MeanOverSeeds.of(List.of(row("kd", 1, 0.2, 0.1, 0.3), row("kd", 1, 0.3, 0.2,
            0.4))));
    assertTrue(e.getMessage().contains("kd seed 1"), e.getMessage());
  }
}
