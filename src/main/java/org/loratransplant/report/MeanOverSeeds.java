package org.loratransplant.report;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.loratransplant.eval.Interval;

/**
 * Per (task, target, method, metric): the mean over seeds with a 95% interval. With two or more
 * seeds the interval is Student's t over the seed means (it measures seed-to-seed variation);
 * with one seed there is nothing to vary, so the row's own interval over test items is kept.
 */
public final class MeanOverSeeds {
  private MeanOverSeeds() {}

  /** The summary of one (task, target, method, metric) over the runs of {@code seeds}. */
  public record Summary(String task, String target, String method, String metric, double mean,
      double lo, double hi, List<Integer> seeds) {

    public int nSeeds() {
      return seeds.size();
    }

    /** True when lo/hi come from a t interval over seeds (false: the single run's own). */
    public boolean overSeeds() {
      return seeds.size() >= 2;
    }
  }

  /** One summary per (task, target, method, metric), in order of first appearance. */
  public static List<Summary> of(List<ResultRow> rows) {
    Map<List<String>, TreeMap<Integer, ResultRow>> groups = new LinkedHashMap<>();
    for (ResultRow r : rows) {
      List<String> key = List.of(r.task(), r.target(), r.method(), r.metric());
      ResultRow before = groups.computeIfAbsent(key, k -> new TreeMap<>()).put(r.seed(), r);
      if (before != null) {
        throw new IllegalArgumentException("two results for " + r.method() + " seed " + r.seed()
            + " on " + r.task() + "/" + r.target() + " " + r.metric() + " (sources '"
            + before.source() + "' and '" + r.source() + "')");
      }
    }
    List<Summary> out = new ArrayList<>();
    for (var e : groups.entrySet()) {
      out.add(summarise(e.getKey(), e.getValue()));
    }
    return out;
  }

  private static Summary summarise(List<String> key, TreeMap<Integer, ResultRow> bySeed) {
    List<Integer> seeds = List.copyOf(bySeed.keySet());
    if (bySeed.size() == 1) {
      ResultRow r = bySeed.firstEntry().getValue();
      return new Summary(key.get(0), key.get(1), key.get(2), key.get(3), r.value(), r.ciLow(),
          r.ciHigh(), seeds);
    }
    double[] values = new double[bySeed.size()];
    int i = 0;
    for (ResultRow r : bySeed.values()) {
      values[i++] = r.value();
    }
    Interval t = Interval.mean(values);
    return new Summary(key.get(0), key.get(1), key.get(2), key.get(3), t.value(), t.lo(),
        t.hi(), seeds);
  }

  /** The summary for one cell, or null when there is none. */
  public static Summary find(List<Summary> summaries, String task, String target, String method,
      String metric) {
    for (Summary s : summaries) {
      if (s.task().equals(task) && s.target().equals(target) && s.method().equals(method)
          && s.metric().equals(metric)) {
        return s;
      }
    }
    return null;
  }
}
