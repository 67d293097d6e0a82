package org.loratransplant.recipes;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import org.junit.jupiter.api.Test;
import org.loratransplant.recipes.Transplant.Trial;

/** How the tune stage picks among candidates scored on the validation split. */
class TuneChoiceTest {
  static Trial t(double k, int m, double lr, double em, double ca) {
    return new Trial(k, m, lr, em, ca, 0);
  }

  @Test
  void theBestExactMatchWinsAndChoiceAccuracyBreaksItsTies() {
    Trial a = t(70, 120, 3e-3, 0.40, 0.60);
    Trial b = t(100, 120, 3e-3, 0.45, 0.10);
    Trial c = t(30, 120, 3e-3, 0.45, 0.50);
    assertEquals(c, Transplant.best(List.of(a, b, c), 3e-3));
  }

  @Test
  void exactTiesGoToTheLargerKThenTheLargerMThenTheOwnLearningRate() {
    // One-word answers: every k keeps the same word, so every candidate scores the same; the
    // choice must then be 100 % (plain training on every token), not whichever came first.
    Trial k30 = t(30, 120, 3e-3, 0.5, 0.5);
    Trial k100 = t(100, 120, 3e-3, 0.5, 0.5);
    assertEquals(k100, Transplant.best(List.of(k30, k100), 3e-3));
    Trial m60 = t(100, 60, 3e-3, 0.5, 0.5);
    assertEquals(k100, Transplant.best(List.of(m60, k100), 3e-3));
    Trial otherLr = t(100, 120, 1e-2, 0.5, 0.5);
    assertEquals(k100, Transplant.best(List.of(otherLr, k100), 3e-3));
    assertEquals(k100, Transplant.best(List.of(k100, otherLr), 3e-3));
  }
}
