package org.loratransplant.recipes;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import org.loratransplant.pipeline.StageStore;
import org.loratransplant.report.ComparisonPlot;
import org.loratransplant.report.ComparisonReport;
import org.loratransplant.report.ItemScores;
import org.loratransplant.report.MeanOverSeeds;
import org.loratransplant.report.ResultRow;

/**
 * The comparison's outputs beside its cells: {@code results.json}, {@code report.md} (one table
 * per task and target, paired tests against vanilla and between the named pairs) and one PNG per
 * main metric. They are rebuilt from the cells' stored evaluations on every run, so a rerun of a
 * finished comparison prints the same report again.
 */
final class CompareReports {
  private CompareReports() {}

  /**
   * One matrix of the whole comparison: a row per method, a column per (task, target), each cell
   * the metric's mean over seeds with its 95% interval (t over seeds; one run: its own interval).
   */
  static String overview(List<ResultRow> rows, List<String> methods, String metric) {
    List<MeanOverSeeds.Summary> sums = MeanOverSeeds.of(rows);
    Set<List<String>> columns = new LinkedHashSet<>();
    rows.forEach(r -> columns.add(List.of(r.task(), r.target())));
    StringBuilder sb = new StringBuilder("## Overview: ").append(metric)
        .append(" (mean over seeds [95% interval])\n\n| method |");
    columns.forEach(col -> sb.append(" ").append(col.get(0)).append(" → ").append(col.get(1))
        .append(" |"));
    sb.append("\n|---|").append("---|".repeat(columns.size())).append("\n");
    for (String m : methods) {
      sb.append("| ").append(m).append(" |");
      for (List<String> col : columns) {
        MeanOverSeeds.Summary s = MeanOverSeeds.find(sums, col.get(0), col.get(1), m, metric);
        if (s == null && m.equals("expert")) {
          // the expert is evaluated once per task, under the first target's column name
          s = sums.stream().filter(x -> x.task().equals(col.get(0)) && x.method().equals(m)
              && x.metric().equals(metric)).findFirst().orElse(null);
        }
        sb.append(s == null ? " — |" : String.format(" %.3f [%.3f, %.3f] |", s.mean(), s.lo(),
            s.hi()));
      }
      sb.append("\n");
    }
    return sb.toString();
  }

  static String write(StageStore store, CompareJob.CompareSettings c, List<ResultRow> rows,
      List<ItemScores> items) {
    List<ComparisonReport.Pair> pairs = new ArrayList<>();
    for (String[] p : c.pairs()) {
      pairs.add(new ComparisonReport.Pair(p[0], p[1]));
    }
    Set<String> metrics = new LinkedHashSet<>();
    rows.forEach(r -> metrics.add(r.metric()));
    List<String> main = new ArrayList<>();
    for (String m : List.of(ResultRow.EXACT_MATCH, ResultRow.CHOICE_ACCURACY)) {
      if (metrics.contains(m)) {
        main.add(m);
      }
    }
    ComparisonReport.Options o = new ComparisonReport.Options(c.methods(), "vanilla", main, pairs,
        10_000, 0);
    StringBuilder md = new StringBuilder();
    md.append("# Comparison: ").append(String.join(", ", c.methods())).append("\n\n")
        .append("Tasks ").append(c.tasks().size()).append(", targets ").append(c.targets())
        .append(", seeds ").append(c.seeds()).append(" (the training seed; each task's pool is ")
        .append("generated once with seed ").append(c.poolSeed()).append(").\n\n");
    for (String m : main) {
      md.append(overview(rows, c.methods(), m)).append("\n");
    }
    md.append(ComparisonReport.markdown(rows, items, o));
    if (main.contains(ResultRow.CHOICE_ACCURACY)) {
      ComparisonReport.Options choice = new ComparisonReport.Options(c.methods(), "vanilla",
          List.of(ResultRow.CHOICE_ACCURACY), pairs, 10_000, 0);
      md.append("\n## Paired tests on choice accuracy\n\n")
          .append(ComparisonReport.markdown(rows, items, choice));
    }
    try {
      Path local = Files.createTempDirectory("lt-compare-");
      Files.writeString(local.resolve("report.md"), md.toString());
      ComparisonReport.writeJson(local.resolve("results.json"), rows);
      for (String m : main) {
        ComparisonPlot.png(rows, m, c.methods(), 1400, 900, local.resolve("plot-" + m + ".png"));
      }
      try (var files = Files.list(local)) {
        for (Path f : files.toList()) {
          store.writeBytes(f.getFileName().toString(), Files.readAllBytes(f));
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return md.toString();
  }
}
