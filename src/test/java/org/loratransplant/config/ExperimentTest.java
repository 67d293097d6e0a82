package org.loratransplant.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

/** lt.eval values that would make a meaningless evaluation are refused. */
class ExperimentTest {
  static Experiment with(String... sets) {
    return new Experiment(Settings.load(Path.of("conf/default.conf"), List.of(sets)));
  }

  @Test
  void maxNewTokensAndBatchSizeBelowOneAreRefused() {
    // max-new-tokens = 0 reported exact match 0 (empty answers) without a word.
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> with("lt.eval.max-new-tokens=0").evaluation());
    assertTrue(e.getMessage().contains("lt.eval.max-new-tokens") && e.getMessage().contains("0"),
        e.getMessage());
    assertThrows(IllegalArgumentException.class,
        () -> with("lt.eval.max-new-tokens=-3").evaluation());
    e = assertThrows(IllegalArgumentException.class,
        () -> with("lt.eval.batch-size=0").evaluation());
    assertTrue(e.getMessage().contains("lt.eval.batch-size"), e.getMessage());
    assertEquals(1, with("lt.eval.max-new-tokens=1").evaluation().maxNewTokens());
  }
}
