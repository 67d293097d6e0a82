package org.loratransplant.discriminate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Both filters on a hand-made score vector. */
class FilterTest {
  // id: score. Ids 9 and 1 tie at 0.5; the tie-break must keep id 1.
  private static final long[] IDS = {5, 3, 9, 1, 7, 2};
  private static final double[] SCORES = {2.0, -1.0, 0.5, 0.5, 0.0, 3.0};

  private static List<Scored> rows() {
    List<Scored> out = new ArrayList<>();
    for (int i = 0; i < IDS.length; i++) {
      out.add(new Scored(new Labelled(IDS[i], "q" + IDS[i], "a"), SCORES[i]));
    }
    return out;
  }

  private static List<Long> ids(List<Scored> s) {
    return s.stream().map(x -> x.row().id()).toList();
  }

  @Test
  void topFractionKeepsTheBestAndBreaksTiesByLowerId() {
    // round(0.5 x 6) = 3: scores 3.0 (id 2), 2.0 (id 5), then 0.5 shared by ids 9 and 1 -> id 1.
    assertEquals(List.of(5L, 1L, 2L), ids(new Filter.TopFraction(0.5).apply(rows())));
    // The same rows in reverse order keep the same set (returned in their input order).
    List<Scored> reversed = rows();
    Collections.reverse(reversed);
    assertEquals(List.of(2L, 1L, 5L), ids(new Filter.TopFraction(0.5).apply(reversed)));
    // 4 of 6: both tied rows.
    assertEquals(List.of(5L, 9L, 1L, 2L), ids(new Filter.TopFraction(4.0 / 6).apply(rows())));
    assertEquals(6, new Filter.TopFraction(1.0).apply(rows()).size());
  }

  @Test
  void keepCountRoundsHalfUp() {
    assertEquals(3, new Filter.TopFraction(0.5).keepCount(5)); // 2.5 -> 3
    assertEquals(2, new Filter.TopFraction(0.25).keepCount(6)); // 1.5 -> 2
    assertEquals(1, new Filter.TopFraction(0.2).keepCount(4)); // 0.8 -> 1
    assertEquals(0, new Filter.TopFraction(0.1).keepCount(4)); // 0.4 -> 0: nothing kept
    assertEquals(7, new Filter.TopFraction(1.0).keepCount(7));
  }

  @Test
  void thresholdKeepsScoresAtOrAboveIt() {
    assertEquals(List.of(5L, 9L, 1L, 7L, 2L), ids(new Filter.Threshold(0.0).apply(rows())));
    assertEquals(List.of(5L, 2L), ids(new Filter.Threshold(0.6).apply(rows())));
    assertTrue(new Filter.Threshold(3.5).apply(rows()).isEmpty());
  }

  @Test
  void nanScoresAndRepeatedIdsAreRefusedNamingTheRow() {
    List<Scored> nan = rows();
    nan.set(1, new Scored(new Labelled(3, "q", "a"), Double.NaN));
    assertEquals("row 3 has a NaN score", assertThrows(IllegalArgumentException.class,
        () -> new Filter.TopFraction(0.5).apply(nan)).getMessage());
    List<Scored> dup = rows();
    dup.add(new Scored(new Labelled(9, "again", "a"), 1.0));
    assertTrue(assertThrows(IllegalArgumentException.class,
        () -> new Filter.Threshold(0).apply(dup)).getMessage().startsWith("row id 9 occurs"));
  }
}
