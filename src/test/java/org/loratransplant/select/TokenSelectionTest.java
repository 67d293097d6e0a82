package org.loratransplant.select;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.List;
import org.junit.jupiter.api.Test;

class TokenSelectionTest {

  @Test
  void keepsFloorOfKPercentOfTheTokens() {
    assertEquals(7, TokenSelection.keepCount(10, 70));
    assertEquals(2, TokenSelection.keepCount(3, 70));
    assertEquals(0, TokenSelection.keepCount(1, 70), "the paper's floor can keep nothing");
    assertEquals(5, TokenSelection.keepCount(5, 100));
    assertThrows(IllegalArgumentException.class, () -> TokenSelection.keepCount(5, 0));
    assertThrows(IllegalArgumentException.class, () -> TokenSelection.keepCount(5, 100.5));
  }

  @Test
  void perSampleTakesTheHighestScoresAndBreaksTiesByPosition() {
    float[] s = {0.5f, 2f, -1f, 2f, 1f};
    // floor(0.6 x 5) = 3: the two 2.0s and 1.0.
    assertArrayEquals(new float[] {0, 1, 0, 1, 1}, TokenSelection.perSample(s, 60));
    // floor(0.2 x 5) = 1: of the tied 2.0s the earlier one.
    assertArrayEquals(new float[] {0, 1, 0, 0, 0}, TokenSelection.perSample(s, 20));
  }

  @Test
  void perGroupSelectsOverTheFlattenedBatch() {
    List<float[]> group = List.of(new float[] {5f, 0f}, new float[] {1f, 1f, 9f},
        new float[] {1f});
    // 6 tokens, k 50% -> 3: 9, 5, then the first of the three tied 1.0s (sample 1, position 0).
    List<float[]> masks = TokenSelection.perGroup(group, 50);
    assertArrayEquals(new float[] {1, 0}, masks.get(0));
    assertArrayEquals(new float[] {1, 0, 1}, masks.get(1));
    assertArrayEquals(new float[] {0}, masks.get(2));
  }

  @Test
  void nanScoresAreRejected() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> TokenSelection.perSample(new float[] {1f, Float.NaN}, 50));
    assertEquals("score of sample 0 token 1 is NaN", e.getMessage());
  }
}
