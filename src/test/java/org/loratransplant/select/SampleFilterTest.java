package org.loratransplant.select;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

class SampleFilterTest {
  private static final Map<String, Long> HALF_HALF = Map.of("False", 125L, "True", 125L);

  /** 10 "False" (ids 1-10, excess 0.1 x id) and 3 "True" (ids 11-13). */
  private static List<Candidate> pool() {
    List<Candidate> p = new ArrayList<>();
    double[] falseExcess = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0};
    for (int i = 0; i < 10; i++) {
      p.add(new Candidate(i + 1, falseExcess[i], "False"));
    }
    p.add(new Candidate(11, 0.05, "True"));
    p.add(new Candidate(12, 0.5, "True"));
    p.add(new Candidate(13, 0.25, "True"));
    return p;
  }

  private static List<Long> ids(List<Candidate> cs) {
    return cs.stream().map(Candidate::sampleId).toList();
  }

  @Test
  void topMTakesTheLargestExcessesAndBreaksTiesBySmallerId() {
    // 1.0 .. 0.6 are ids 10..6; 0.5 is shared by id 5 (False) and id 12 (True): 5 wins.
    assertEquals(List.of(10L, 9L, 8L, 7L, 6L, 5L), ids(SampleFilter.topM(pool(), 6)));
  }

  @Test
  void balancedSplitsSixAsThreeAndThree() {
    // False: 10, 9, 8; True: 12 (0.5), 13 (0.25), 11 (0.05); returned in rank order.
    List<Candidate> got = SampleFilter.balanced(pool(), 6, HALF_HALF);
    assertEquals(List.of(10L, 9L, 8L, 12L, 13L, 11L), ids(got));
    // No reference = equal shares: the same here.
    assertEquals(ids(got), ids(SampleFilter.balanced(pool(), 6, null)));
    assertEquals(ids(got), ids(SampleFilter.balanced(pool(), 6, Map.of())));
  }

  @Test
  void aShortClassGivesItsPlacesToTheOthers() {
    List<Candidate> p = pool();
    p.removeIf(c -> c.sampleId() == 11);
    // True has only 2 of its 3 places: False takes the spare one, 4 in all.
    assertEquals(List.of(10L, 9L, 8L, 7L, 12L, 13L), ids(SampleFilter.balanced(p, 6, HALF_HALF)));
  }

  @Test
  void sharesFollowTheReferenceWithLargestRemainders() {
    Map<String, Long> twoToOne = Map.of("False", 200L, "True", 100L);
    // 6 x 2/3 = 4, 6 x 1/3 = 2.
    assertEquals(List.of(10L, 9L, 8L, 7L, 12L, 13L),
        ids(SampleFilter.balanced(pool(), 6, twoToOne)));
    // 5: 3.33 and 1.67 -> 3 + 1, the spare place to the larger remainder (True).
    assertEquals(List.of(10L, 9L, 8L, 12L, 13L),
        ids(SampleFilter.balanced(pool(), 5, twoToOne)));
    Map<String, Double> equal = new LinkedHashMap<>();
    equal.put("A", 1.0);
    equal.put("B", 1.0);
    equal.put("C", 1.0);
    // 4 / 3 each: 1 + 1 + 1, the spare to the first label.
    assertEquals(Map.of("A", 2, "B", 1, "C", 1), SampleFilter.quotas(equal, 4));
    equal.put("C", 2.0);
    // 4 x (1/4, 1/4, 2/4) = 1, 1, 2 exactly.
    assertEquals(Map.of("A", 1, "B", 1, "C", 2), SampleFilter.quotas(equal, 4));
  }

  @Test
  void classesOutsideTheReferenceOnlyFillWhatTheReferencedOnesCannot() {
    List<Candidate> p = pool();
    p.add(new Candidate(20, 5.0, "Fals"));
    p.add(new Candidate(21, 4.0, "Fals"));
    // Largest excess of all, yet no place while False and True have candidates.
    assertEquals(List.of(10L, 9L, 8L, 12L, 13L, 11L), ids(SampleFilter.balanced(p, 6, HALF_HALF)));
    // M = 14 of 15: True 3 (all), False 10 (all), then one Fals: the larger excess, id 20.
    List<Long> got = ids(SampleFilter.balanced(p, 14, HALF_HALF));
    assertEquals(14, got.size());
    assertEquals(20L, got.get(0));
    assertFalse(got.contains(21L));
  }

  @Test
  void noneTakesTheFirstIdsAndEveryModeReturnsAllOfAShortPool() {
    // Ids 1..6, in rank order: 0.6 (6) .. 0.1 (1).
    assertEquals(List.of(6L, 5L, 4L, 3L, 2L, 1L),
        ids(SampleFilter.select(SampleMode.NONE, pool(), 6, null)));
    for (SampleMode mode : SampleMode.values()) {
      assertEquals(13, SampleFilter.select(mode, pool(), 20, HALF_HALF).size(), mode.name());
      assertEquals(13, SampleFilter.select(mode, pool(), 13, HALF_HALF).size(), mode.name());
    }
  }

  @Test
  void theInputOrderDoesNotMatter() {
    List<Candidate> p = pool();
    List<Long> expected = ids(SampleFilter.balanced(p, 7, HALF_HALF));
    Random rnd = new Random(3);
    for (int i = 0; i < 20; i++) {
      Collections.shuffle(p, rnd);
      assertEquals(expected, ids(SampleFilter.balanced(p, 7, HALF_HALF)));
      assertEquals(ids(SampleFilter.topM(pool(), 7)), ids(SampleFilter.topM(p, 7)));
      assertEquals(ids(SampleFilter.firstM(pool(), 7)), ids(SampleFilter.firstM(p, 7)));
    }
  }

  @Test
  void badInputsAreNamed() {
    assertEquals("lt.select.sample-mode must be one of top-m, balanced, none; got 'all'",
        assertThrows(IllegalArgumentException.class, () -> SampleMode.parse("all"))
            .getMessage());
    assertEquals("M (samples to keep) must be >= 1, got 0", assertThrows(
        IllegalArgumentException.class, () -> SampleFilter.topM(pool(), 0)).getMessage());
    List<Candidate> dup = pool();
    dup.add(new Candidate(3, 9.0, "True"));
    assertEquals("sample 3 is in the pool twice", assertThrows(IllegalArgumentException.class,
        () -> SampleFilter.topM(dup, 2)).getMessage());
    List<Candidate> unlabelled = pool();
    unlabelled.add(new Candidate(30, 1.0, null));
    assertEquals("sample 30 has no answer label (the class-balanced filter needs one per "
        + "candidate)", assertThrows(IllegalArgumentException.class,
            () -> SampleFilter.balanced(unlabelled, 2, null)).getMessage());
    assertEquals("reference count of class 'True' must be >= 0, got -1",
        assertThrows(IllegalArgumentException.class,
            () -> SampleFilter.balanced(pool(), 2, Map.of("True", -1L))).getMessage());
  }
}
