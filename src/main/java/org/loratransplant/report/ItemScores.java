package org.loratransplant.report;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.loratransplant.eval.Evaluator;

/**
 * One run's per-item scores for one metric, in test-item order (0/1 for accuracies), kept so
 * that two methods can be compared item by item (McNemar, paired bootstrap) rather than only
 * through their means.
 */
public record ItemScores(String task, String target, String method, int seed, String metric,
    double[] perItem) {

  public ItemScores {
    ResultRow.requireName("task", task);
    ResultRow.requireName("target", target);
    ResultRow.requireName("method", method);
    ResultRow.checkMetric(metric);
    if (perItem == null || perItem.length == 0) {
      throw new IllegalArgumentException("no per-item scores for " + method + " seed " + seed
          + " on " + task + "/" + target + " " + metric);
    }
    perItem = perItem.clone();
    for (int i = 0; i < perItem.length; i++) {
      double x = perItem[i];
      if (!Double.isFinite(x) || ResultRow.isAccuracy(metric) && x != 0 && x != 1) {
        throw new IllegalArgumentException("item " + i + " of " + method + " seed " + seed
            + " on " + task + "/" + target + " has " + metric + " = " + x
            + (ResultRow.isAccuracy(metric) ? " (accuracies are 0 or 1)" : " (not finite)"));
      }
    }
  }

  /** A copy: the record keeps its own array so callers cannot change it afterwards. */
  @Override
  public double[] perItem() {
    return perItem.clone();
  }

  int size() {
    return perItem.length;
  }

  double at(int i) {
    return perItem[i];
  }

  /**
   * The per-item scores of one {@link Evaluator.Report}, one entry per metric it has; an item's
   * choice counts as correct when it equals the stripped target, as in the evaluator.
   */
  public static List<ItemScores> fromReport(String task, String target, String method, int seed,
      Evaluator.Report r) {
    List<Evaluator.Row> rows = r.rows();
    int n = rows.size();
    double[] exact = new double[n];
    double[] choice = r.choiceAccuracy() == null ? null : new double[n];
    double[] r1 = new double[n];
    double[] rl = new double[n];
    for (int i = 0; i < n; i++) {
      Evaluator.Row row = rows.get(i);
      exact[i] = row.exact() ? 1 : 0;
      if (choice != null) {
        choice[i] = row.choice() != null && row.choice().equals(row.target().strip()) ? 1 : 0;
      }
      r1[i] = row.rouge1();
      rl[i] = row.rougeL();
    }
    List<ItemScores> out = new ArrayList<>();
    out.add(new ItemScores(task, target, method, seed, ResultRow.EXACT_MATCH, exact));
    if (choice != null) {
      out.add(new ItemScores(task, target, method, seed, ResultRow.CHOICE_ACCURACY, choice));
    }
    out.add(new ItemScores(task, target, method, seed, ResultRow.ROUGE1, r1));
    out.add(new ItemScores(task, target, method, seed, ResultRow.ROUGE_L, rl));
    return out;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof ItemScores s && task.equals(s.task) && target.equals(s.target)
        && method.equals(s.method) && seed == s.seed && metric.equals(s.metric)
        && Arrays.equals(perItem, s.perItem);
  }

  @Override
  public int hashCode() {
    return ((task.hashCode() * 31 + target.hashCode()) * 31 + method.hashCode()) * 31
        + seed * 17 + metric.hashCode() * 7 + Arrays.hashCode(perItem);
  }

  @Override
  public String toString() {
    return "ItemScores[" + task + "/" + target + " " + method + " seed " + seed + " " + metric
        + ", " + perItem.length + " items]";
  }
}
