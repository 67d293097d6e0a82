package org.loratransplant.report;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;
import org.loratransplant.eval.Evaluator;
import org.loratransplant.eval.Interval;

class ResultRowTest {

  private static Evaluator.Report report() {
    List<Evaluator.Row> rows = List.of(
        new Evaluator.Row("q1", " yes ", "yes", "yes", true, "yes", 1.0, 1.0),
        new Evaluator.Row("q2", "no", "maybe no", "maybe no", false, "no", 2.0 / 3, 0.5),
        new Evaluator.Row("q3", "yes", "no", "no", false, "no", 0.0, 0.0));
    return new Evaluator.Report("titok", 3, Interval.wilson(1, 3), Interval.wilson(2, 3),
        Interval.mean(new double[] {1.0, 2.0 / 3, 0}), Interval.mean(new double[] {1, 0.5, 0}),
        rows);
  }

  @Test
  void rowsAndItemScoresFromAnEvaluatorReport() {
    List<ResultRow> rows = ResultRow.fromReport("boolq", "stories260K", "llama2xs", "titok", 2,
        report());
    assertEquals(List.of("exact_match", "choice_accuracy", "rouge1", "rougeL"),
        rows.stream().map(ResultRow::metric).toList());
    assertEquals(2.0 / 3, rows.get(1).value(), 1e-12);
    assertEquals(Interval.wilson(2, 3).lo(), rows.get(1).ciLow());
    assertEquals(3, rows.get(0).n());

    List<ItemScores> items = ItemScores.fromReport("boolq", "llama2xs", "titok", 2, report());
    assertArrayEquals(new double[] {1, 0, 0}, items.get(0).perItem());
    // the choice is compared with the stripped target, as the evaluator counts it
    assertArrayEquals(new double[] {1, 1, 0}, items.get(1).perItem());
    assertArrayEquals(new double[] {1, 0.5, 0}, items.get(3).perItem());
  }

  @Test
  void itemScoresRefuseNonBinaryAccuracyAndKeepTheirOwnArray() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> new ItemScores("t", "g", "kd", 1, "exact_match", new double[] {1, 0.5}));
    assertTrue(e.getMessage().contains("item 1"), e.getMessage());
    double[] xs = {0.2, 0.4};
    ItemScores s = new ItemScores("t", "g", "kd", 1, "rouge1", xs);
    xs[0] = 9;
    assertEquals(0.2, s.perItem()[0]);
  }
}
