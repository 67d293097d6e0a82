package org.loratransplant.pipeline;

import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.loratransplant.testing.SparkTestSession;

/**
 * Progress lines: once every sample is done the stage is still writing; that is said once, not
 * "240/240 samples (100%)" again every few seconds until the stage ends (issue 13, finding 5).
 */
class ProgressTest {
  @Test
  void allDoneIsSaidOnceWhileTheStageWritesItsOutputs() {
    try (Progress p = new Progress(SparkTestSession.get().sparkContext(), "score", "samples",
        240, false)) {
      p.done().add(120);
      String half = p.line();
      assertTrue(half.contains("120/240 samples (50%)") && half.contains("ETA"), half);
      assertNotNull(p.line(), "before the end every tick prints (rate, ETA)");
      p.done().add(120);
      String all = p.line();
      assertTrue(all.contains("240/240 samples (100%)") && all.contains("writing"), all);
      assertNull(p.line(), "no second 100% line");
      assertNull(p.line());
      // A count that grows past the total (another generation round) prints again, once.
      p.done().add(10);
      assertTrue(p.line().contains("250/240"));
      assertNull(p.line());
    }
  }
}
