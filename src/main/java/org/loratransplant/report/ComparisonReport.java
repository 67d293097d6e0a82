package org.loratransplant.report;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * The comparison of methods x tasks x targets x seeds as Markdown (one table per task and
 * target, then paired tests between named methods) and as {@code results.json}.
 */
public final class ComparisonReport {
  private static final ObjectMapper JSON = new ObjectMapper()
      .enable(SerializationFeature.INDENT_OUTPUT);
  private static final String NONE = "—";

  private ComparisonReport() {}

  /** A paired comparison: {@code method - baseline}. */
  public record Pair(String method, String baseline) {
    public Pair {
      ResultRow.requireName("pair method", method);
      ResultRow.requireName("pair baseline", baseline);
    }
  }

  /**
   * @param methods row order (methods found in the rows but not named here follow, in order of
   *     appearance; named methods without rows are skipped)
   * @param baseline the method every row is tested against (vanilla)
   * @param mainMetrics the metric tested, by preference: each table uses the first one it has
   *     (e.g. choice_accuracy, then exact_match for open-answer tasks)
   * @param pairs further comparisons for the second table (titok vs kd)
   * @param resamples paired bootstrap resamples
   * @param seed the bootstrap generator's seed
   */
  public record Options(List<String> methods, String baseline, List<String> mainMetrics,
      List<Pair> pairs, int resamples, long seed) {
    public Options {
      methods = List.copyOf(methods);
      ResultRow.requireName("baseline", baseline);
      if (mainMetrics.isEmpty()) {
        throw new IllegalArgumentException("mainMetrics is empty: name the metric to test");
      }
      mainMetrics.forEach(ResultRow::checkMetric);
      mainMetrics = List.copyOf(mainMetrics);
      pairs = List.copyOf(pairs);
      if (resamples < 1) {
        throw new IllegalArgumentException("resamples must be >= 1, was " + resamples);
      }
    }

    /** Vanilla as baseline, titok vs kd, 10,000 resamples, seed 0. */
    public static Options defaults(List<String> methods, String... mainMetrics) {
      return new Options(methods, "vanilla", List.of(mainMetrics),
          List.of(new Pair("titok", "kd")), 10_000, 0);
    }
  }

  /** One paired comparison's outcome, with the test that gave its p. */
  record Outcome(String metric, List<Integer> seeds, int n, PairedTests.Bootstrap bootstrap,
      PairedTests.McNemar mcnemar) {
    double p() {
      return mcnemar != null ? mcnemar.p() : bootstrap.p();
    }
  }

  public static String markdown(List<ResultRow> rows, List<ItemScores> items, Options o) {
    if (rows.isEmpty()) {
      throw new IllegalArgumentException("no result rows to report");
    }
    List<MeanOverSeeds.Summary> summaries = MeanOverSeeds.of(rows);
    StringBuilder sb = new StringBuilder("# Method comparison\n\n");
    legend(sb, o);
    for (List<String> tt : groups(rows)) {
      String task = tt.get(0);
      String target = tt.get(1);
      List<ResultRow> group = rows.stream()
          .filter(r -> r.task().equals(task) && r.target().equals(target)).toList();
      table(sb, task, target, group, summaries, items, o);
    }
    return sb.toString();
  }

  private static void legend(StringBuilder sb, Options o) {
    sb.append("- Cells: mean over seeds [95% interval]. With 2 or more seeds the interval is a ")
        .append("Student t interval over the per-seed values; with 1 seed it is that run's own ")
        .append("interval over test items (Wilson for accuracies, t for ROUGE F).\n");
    sb.append("- Δ vs ").append(o.baseline()).append(": mean per-item difference (method − ")
        .append(o.baseline()).append(") on the table's main metric, paired over (seed, test ")
        .append("item); a baseline with a single run is reused for every seed. [95% interval] ")
        .append("= percentile interval of a paired bootstrap, ").append(o.resamples())
        .append(" resamples, seed ").append(o.seed()).append(".\n");
    sb.append("- p: two-sided. Accuracies (0/1 per item): exact McNemar test (binomial on the ")
        .append("discordant pairs). ROUGE: the paired bootstrap above (").append(o.resamples())
        .append(" resamples).\n\n");
  }

  private static void table(StringBuilder sb, String task, String target, List<ResultRow> group,
      List<MeanOverSeeds.Summary> summaries, List<ItemScores> items, Options o) {
    Set<String> present = group.stream().map(ResultRow::metric).collect(Collectors.toSet());
    List<String> metrics = ResultRow.METRICS.stream().filter(present::contains).toList();
    String main = o.mainMetrics().stream().filter(present::contains).findFirst().orElse(null);
    String sources = group.stream().map(ResultRow::source).filter(s -> !s.isEmpty()).distinct()
        .collect(Collectors.joining(", "));
    sb.append("## ").append(task).append(" → ").append(target).append("\n\n");
    if (!sources.isEmpty()) {
      sb.append("Sources: ").append(sources).append(". ");
    }
    sb.append("Main metric: ").append(main == null ? "none of " + o.mainMetrics() : main)
        .append(".\n\n");
    String testName = main == null ? "" : ResultRow.isAccuracy(main) ? "McNemar" : "bootstrap";
    sb.append("| method | seeds |");
    metrics.forEach(m -> sb.append(' ').append(m).append(" |"));
    sb.append(" Δ ").append(main == null ? "" : main + " ").append("vs ").append(o.baseline())
        .append(" [95% CI] | p (").append(testName).append(") |\n|---|---|");
    metrics.forEach(m -> sb.append("---|"));
    sb.append("---|---|\n");
    for (String method : methodOrder(group, o)) {
      int seeds = (int) group.stream().filter(r -> r.method().equals(method))
          .mapToInt(ResultRow::seed).distinct().count();
      sb.append("| ").append(method).append(" | ").append(seeds).append(" |");
      for (String metric : metrics) {
        MeanOverSeeds.Summary s = MeanOverSeeds.find(summaries, task, target, method, metric);
        sb.append(' ').append(s == null ? "n/a" : cell(s.mean(), s.lo(), s.hi())).append(" |");
      }
      if (method.equals(o.baseline()) || main == null) {
        sb.append(' ').append(NONE).append(" | ").append(NONE).append(" |\n");
      } else {
        Outcome t = test(items, task, target, main, method, o.baseline(), o);
        sb.append(t == null ? " n/a (no per-item scores) | " + NONE + " |\n"
            : " " + delta(t.bootstrap()) + " | " + p(t.p()) + " |\n");
      }
    }
    sb.append('\n');
    pairsTable(sb, task, target, group, main, items, o);
  }

  private static void pairsTable(StringBuilder sb, String task, String target,
      List<ResultRow> group, String main, List<ItemScores> items, Options o) {
    Set<String> methods = group.stream().map(ResultRow::method).collect(Collectors.toSet());
    List<Pair> pairs = o.pairs().stream()
        .filter(p -> methods.contains(p.method()) && methods.contains(p.baseline())).toList();
    if (main == null || pairs.isEmpty()) {
      return;
    }
    String testName = ResultRow.isAccuracy(main) ? "McNemar" : "bootstrap";
    sb.append("Paired comparisons on ").append(main).append(" (").append(task).append(" → ")
        .append(target).append("):\n\n");
    sb.append("| comparison | seeds paired | items paired | Δ [95% CI] | p (").append(testName)
        .append(") |\n|---|---|---|---|---|\n");
    for (Pair pair : pairs) {
      sb.append("| ").append(pair.method()).append(" vs ").append(pair.baseline()).append(" | ");
      Outcome t = test(items, task, target, main, pair.method(), pair.baseline(), o);
      if (t == null) {
        sb.append(NONE).append(" | ").append(NONE).append(" | n/a (no per-item scores) | ")
            .append(NONE).append(" |\n");
      } else {
        sb.append(t.seeds().stream().map(String::valueOf).collect(Collectors.joining(",")))
            .append(" | ").append(t.n()).append(" | ").append(delta(t.bootstrap()))
            .append(" | ").append(p(t.p())).append(" |\n");
      }
    }
    sb.append('\n');
  }

  /** The paired test of method against baseline, or null when either lacks per-item scores. */
  static Outcome test(List<ItemScores> items, String task, String target, String metric,
      String method, String baseline, Options o) {
    if (!has(items, task, target, metric, method) || !has(items, task, target, metric,
        baseline)) {
      return null;
    }
    PairedTests.Paired p = PairedTests.pair(items, task, target, metric, method, baseline);
    PairedTests.Bootstrap bs = PairedTests.bootstrap(p.method(), p.baseline(), o.resamples(),
        o.seed());
    PairedTests.McNemar mc = ResultRow.isAccuracy(metric)
        ? PairedTests.mcnemar(p.method(), p.baseline()) : null;
    return new Outcome(metric, p.seeds(), p.size(), bs, mc);
  }

  private static boolean has(List<ItemScores> items, String task, String target, String metric,
      String method) {
    return items.stream().anyMatch(s -> s.task().equals(task) && s.target().equals(target)
        && s.metric().equals(metric) && s.method().equals(method));
  }

  /** (task, target) in order of first appearance. */
  static List<List<String>> groups(List<ResultRow> rows) {
    LinkedHashSet<List<String>> out = new LinkedHashSet<>();
    rows.forEach(r -> out.add(List.of(r.task(), r.target())));
    return new ArrayList<>(out);
  }

  /** The caller's order of the methods present, then the others in order of appearance. */
  static List<String> methodOrder(List<ResultRow> group, Options o) {
    LinkedHashSet<String> present = new LinkedHashSet<>();
    group.forEach(r -> present.add(r.method()));
    List<String> out = new ArrayList<>();
    for (String m : o.methods()) {
      if (present.remove(m)) {
        out.add(m);
      }
    }
    out.addAll(present);
    return out;
  }

  static String cell(double mean, double lo, double hi) {
    return Double.isNaN(lo) || Double.isNaN(hi) ? String.format(Locale.ROOT, "%.3f", mean)
        : String.format(Locale.ROOT, "%.3f [%.3f, %.3f]", mean, lo, hi);
  }

  static String delta(PairedTests.Bootstrap b) {
    return String.format(Locale.ROOT, "%+.3f [%+.3f, %+.3f]", b.meanDiff(), b.lo(), b.hi());
  }

  static String p(double p) {
    return p < 0.001 ? "<0.001" : String.format(Locale.ROOT, "%.3f", p);
  }

  /**
   * {@code results.json}: a list of {task, source, target, method, seed, metric, value, ci_low,
   * ci_high, n}; an interval bound that does not exist (NaN) is written as null.
   */
  public static String json(List<ResultRow> rows) {
    ArrayNode list = JSON.createArrayNode();
    for (ResultRow r : rows) {
      ObjectNode o = list.addObject();
      o.put("task", r.task());
      o.put("source", r.source());
      o.put("target", r.target());
      o.put("method", r.method());
      o.put("seed", r.seed());
      o.put("metric", r.metric());
      o.put("value", r.value());
      putBound(o, "ci_low", r.ciLow());
      putBound(o, "ci_high", r.ciHigh());
      o.put("n", r.n());
    }
    try {
      return JSON.writeValueAsString(list);
    } catch (IOException e) {
      throw new IllegalStateException("cannot write results as JSON", e);
    }
  }

  private static void putBound(ObjectNode o, String name, double x) {
    if (Double.isNaN(x)) {
      o.putNull(name);
    } else {
      o.put(name, x);
    }
  }

  /** Reads {@link #json} back (null bounds become NaN); names the entry and field at fault. */
  public static List<ResultRow> fromJson(String json) {
    JsonNode root;
    try {
      root = JSON.readTree(json);
    } catch (IOException e) {
      throw new IllegalArgumentException("results JSON does not parse: " + e.getMessage(), e);
    }
    if (root == null || !root.isArray()) {
      throw new IllegalArgumentException("results JSON is not a list");
    }
    List<ResultRow> out = new ArrayList<>();
    for (int i = 0; i < root.size(); i++) {
      JsonNode o = root.get(i);
      for (String f : List.of("task", "source", "target", "method", "seed", "metric", "value",
          "n")) {
        if (o.get(f) == null || o.get(f).isNull()) {
          throw new IllegalArgumentException("results entry " + i + " lacks field '" + f + "'");
        }
      }
      out.add(new ResultRow(o.get("task").asText(), o.get("source").asText(),
          o.get("target").asText(), o.get("method").asText(), o.get("seed").asInt(),
          o.get("metric").asText(), o.get("value").asDouble(), bound(o.get("ci_low")),
          bound(o.get("ci_high")), o.get("n").asInt()));
    }
    return out;
  }

  private static double bound(JsonNode n) {
    return n == null || n.isNull() ? Double.NaN : n.asDouble();
  }

  /** Writes {@link #json} to {@code file} atomically (a reader never sees half a file). */
  public static void writeJson(Path file, List<ResultRow> rows) {
    write(file, json(rows));
  }

  /** Writes text to {@code file} atomically, creating its folder. */
  public static void write(Path file, String text) {
    try {
      Path abs = file.toAbsolutePath();
      Files.createDirectories(abs.getParent());
      Path tmp = Files.createTempFile(abs.getParent(), "." + abs.getFileName(), ".tmp");
      Files.writeString(tmp, text);
      Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    } catch (IOException e) {
      throw new IllegalStateException("cannot write " + file + ": " + e.getMessage(), e);
    }
  }
}
