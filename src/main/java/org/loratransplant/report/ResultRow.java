package org.loratransplant.report;

import java.util.ArrayList;
import java.util.List;
import org.loratransplant.eval.Evaluator;
import org.loratransplant.eval.Interval;

/**
 * One evaluated run's figure for one metric: method {@code method} with training seed
 * {@code seed}, transplanted from {@code source} onto {@code target}, scored on {@code task}'s
 * test split. {@code ciLow}/{@code ciHigh} are the run's own 95% interval over test items
 * (Wilson for accuracies, t for ROUGE; NaN when it has none, e.g. a single item).
 */
public record ResultRow(String task, String source, String target, String method, int seed,
    String metric, double value, double ciLow, double ciHigh, int n) {

  public static final String EXACT_MATCH = "exact_match";
  public static final String CHOICE_ACCURACY = "choice_accuracy";
  public static final String ROUGE1 = "rouge1";
  public static final String ROUGE_L = "rougeL";
  /** Every metric a row may carry, in the order reports show them. */
  public static final List<String> METRICS = List.of(EXACT_MATCH, CHOICE_ACCURACY, ROUGE1,
      ROUGE_L);

  public ResultRow {
    requireName("task", task);
    requireName("target", target);
    requireName("method", method);
    checkMetric(metric);
    if (source == null) {
      throw new IllegalArgumentException("source is null for " + method + " on " + task
          + " (use \"\" when a method has no source)");
    }
    if (n <= 0) {
      throw new IllegalArgumentException("n = " + n + " for " + method + "/" + metric + " on "
          + task + ": a result needs at least one test item");
    }
    if (!Double.isFinite(value)) {
      throw new IllegalArgumentException("value " + value + " for " + method + "/" + metric
          + " on " + task + " is not finite");
    }
  }

  /** True for the metrics whose per-item scores are 0/1 (McNemar applies). */
  public static boolean isAccuracy(String metric) {
    return EXACT_MATCH.equals(metric) || CHOICE_ACCURACY.equals(metric);
  }

  /** The row for one metric from an existing interval. */
  public static ResultRow of(String task, String source, String target, String method, int seed,
      String metric, Interval i) {
    return new ResultRow(task, source, target, method, seed, metric, i.value(), i.lo(), i.hi(),
        i.n());
  }

  /**
   * The rows of one {@link Evaluator.Report}: exact match, ROUGE-1, ROUGE-L and, when the task
   * has a closed answer set, choice accuracy.
   */
  public static List<ResultRow> fromReport(String task, String source, String target,
      String method, int seed, Evaluator.Report r) {
    List<ResultRow> out = new ArrayList<>();
    out.add(of(task, source, target, method, seed, EXACT_MATCH, r.exactMatch()));
    if (r.choiceAccuracy() != null) {
      out.add(of(task, source, target, method, seed, CHOICE_ACCURACY, r.choiceAccuracy()));
    }
    out.add(of(task, source, target, method, seed, ROUGE1, r.rouge1()));
    out.add(of(task, source, target, method, seed, ROUGE_L, r.rougeL()));
    return out;
  }

  static void checkMetric(String metric) {
    if (!METRICS.contains(metric)) {
      throw new IllegalArgumentException("unknown metric '" + metric + "' (expected one of "
          + METRICS + ")");
    }
  }

  static void requireName(String field, String value) {
    if (value == null || value.isBlank()) {
      throw new IllegalArgumentException(field + " is missing (null or blank)");
    }
  }
}
