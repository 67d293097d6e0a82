package org.loratransplant.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ComparisonReportTest {
  private static final String EM = "exact_match";

  private static ResultRow em(String target, String method, int seed, double v, double lo,
      double hi) {
    return new ResultRow("arith", "stories260K", target, method, seed, EM, v, lo, hi, 6);
  }

  private static ResultRow r1(String method, int seed, double v, double lo, double hi) {
    return new ResultRow("arith", "stories260K", "llama2xs", method, seed, "rouge1", v, lo, hi,
        6);
  }

  private static ItemScores items(String method, int seed, double... xs) {
    return new ItemScores("arith", "llama2xs", method, seed, EM, xs);
  }

  private static List<ResultRow> rows() {
    return List.of(
        em("llama2xs", "vanilla", 0, 1.0 / 6, 0.030, 0.564),
        r1("vanilla", 0, 0.25, Double.NaN, Double.NaN),
        em("llama2xs", "titok", 1, 3.0 / 6, 0.2, 0.8),
        em("llama2xs", "titok", 2, 4.0 / 6, 0.3, 0.9),
        em("llama2xs", "titok", 3, 4.0 / 6, 0.3, 0.9),
        r1("titok", 1, 0.3, 0.1, 0.5), r1("titok", 2, 0.3, 0.1, 0.5),
        r1("titok", 3, 0.3, 0.1, 0.5),
        em("llama2xs", "kd", 1, 1.0 / 6, 0.03, 0.56),
        em("llama2xs", "kd", 2, 2.0 / 6, 0.1, 0.7),
        em("llama2xs", "kd", 3, 1.0 / 6, 0.03, 0.56),
        em("babyllama", "vanilla", 0, 0.5, 0.2, 0.8),
        em("babyllama", "kd", 1, 0.25, 0.1, 0.5));
  }

  private static List<ItemScores> itemScores() {
    return List.of(
        items("vanilla", 0, 1, 0, 0, 0, 0, 0),
        items("titok", 1, 1, 1, 1, 0, 0, 0),
        items("titok", 2, 1, 1, 1, 1, 0, 0),
        items("titok", 3, 0, 1, 1, 1, 1, 0),
        items("kd", 1, 1, 0, 0, 0, 0, 0),
        items("kd", 2, 1, 1, 0, 0, 0, 0),
        items("kd", 3, 1, 0, 0, 0, 0, 0));
  }

  private static String line(String md, String prefix) {
    return md.lines().filter(l -> l.startsWith(prefix)).findFirst()
        .orElseThrow(() -> new AssertionError("no line starting '" + prefix + "' in\n" + md));
  }

  private static double[] ci(String cell) {
    Matcher m = Pattern.compile("([+-]\\d\\.\\d{3}) \\[([+-]\\d\\.\\d{3}), ([+-]\\d\\.\\d{3})\\]")
        .matcher(cell);
    assertTrue(m.find(), cell);
    return new double[] {Double.parseDouble(m.group(1)), Double.parseDouble(m.group(2)),
        Double.parseDouble(m.group(3))};
  }

  @Test
  void tableHasEveryMethodInTheCallersOrderWithHandComputedCells() {
    ComparisonReport.Options o = new ComparisonReport.Options(List.of("vanilla", "kd", "titok"),
        "vanilla", List.of("choice_accuracy", EM),
        List.of(new ComparisonReport.Pair("titok", "kd")), 2000, 5);
    String md = ComparisonReport.markdown(rows(), itemScores(), o);

    assertTrue(md.contains("exact McNemar"), md);
    assertTrue(md.contains("2000 resamples"), md);
    assertTrue(md.contains("## arith → llama2xs"), md);
    assertTrue(md.contains("## arith → babyllama"), md);
    assertTrue(md.contains("| method | seeds | exact_match | rouge1 | Δ exact_match vs vanilla"
        + " [95% CI] | p (McNemar) |"), md);

    // no choice_accuracy rows: the table falls back to exact_match and shows no such column
    assertTrue(!md.contains("| choice_accuracy"), md);
    assertEquals("| vanilla | 1 | 0.167 [0.030, 0.564] | 0.250 | — | — |",
        line(md, "| vanilla | 1 | 0.167"));
    // kd: 1/6, 2/6, 1/6 -> mean 0.2222, sd 0.0962, se 0.0556, half 4.303 * se = 0.2391
    // vs vanilla over 18 (seed, item) pairs: b = 0 + 1 + 0 = 1, c = 0 -> p = 2 * 1/2 = 1
    String kd = line(md, "| kd | 3 |");
    assertTrue(kd.startsWith("| kd | 3 | 0.222 [-0.017, 0.461] | n/a | +0.056 ["), kd);
    assertTrue(kd.endsWith("| 1.000 |"), kd);
    // titok: 3/6, 4/6, 4/6 -> mean 0.6111, half 4.303 * 0.0556 = 0.2391 -> [0.372, 0.850]
    // vs vanilla: b = 2 + 3 + 4 = 9, c = 1 -> p = 2 (C(10,0) + C(10,1)) / 2^10 = 0.0215,
    // difference (9 - 1) / 18 = 0.444
    String titok = line(md, "| titok | 3 |");
    assertTrue(titok.startsWith("| titok | 3 | 0.611 [0.372, 0.850] | 0.300 [0.300, 0.300] | "
        + "+0.444 ["), titok);
    assertTrue(titok.endsWith("| 0.021 |"), titok);
    double[] d = ci(titok);
    assertTrue(d[1] < d[0] && d[0] < d[2] && d[1] > 0, titok);
    assertTrue(md.indexOf("| vanilla | 1 |") < md.indexOf("| kd | 3 |")
        && md.indexOf("| kd | 3 |") < md.indexOf("| titok | 3 |"), md);

    // titok vs kd: b = 2 + 2 + 4 = 8, c = 0 + 0 + 1 = 1 -> p = 2 (1 + 9) / 2^9 = 0.039,
    // difference 7 / 18 = 0.389
    String pair = line(md, "| titok vs kd |");
    assertTrue(pair.startsWith("| titok vs kd | 1,2,3 | 18 | +0.389 ["), pair);
    assertTrue(pair.endsWith("| 0.039 |"), pair);

    // babyllama has rows but no per-item scores
    assertTrue(md.contains("| kd | 1 | 0.250 [0.100, 0.500] | n/a (no per-item scores) | — |"),
        md);
    // same inputs and seed: same text
    assertEquals(md, ComparisonReport.markdown(rows(), itemScores(), o));
  }

  @Test
  void rougeMainMetricUsesTheBootstrapP() {
    List<ResultRow> rows = List.of(r1("vanilla", 0, 0.2, 0.1, 0.3), r1("titok", 1, 0.2, 0.1,
        0.3));
    List<ItemScores> items = List.of(
        new ItemScores("arith", "llama2xs", "vanilla", 0, "rouge1", new double[] {0.1, 0.2}),
        new ItemScores("arith", "llama2xs", "titok", 1, "rouge1", new double[] {0.4, 0.5}));
    String md = ComparisonReport.markdown(rows, items, ComparisonReport.Options.defaults(
        List.of("vanilla", "titok"), "rouge1"));
    // every item gains 0.3: every resample's mean is 0.3, p = 2 / (10000 + 1)
    assertTrue(md.contains("| titok | 1 | 0.200 [0.100, 0.300] | +0.300 [+0.300, +0.300] | "
        + "<0.001 |"), md);
    assertTrue(md.contains("p (bootstrap)"), md);
    assertTrue(md.contains("10000 resamples"), md);
  }

  @Test
  void resultsJsonRoundTripsWithExactlyTheDocumentedFields(@TempDir Path dir) throws Exception {
    List<ResultRow> rows = rows();
    Path file = dir.resolve("out/results.json");
    ComparisonReport.writeJson(file, rows);
    String json = Files.readString(file);
    JsonNode root = new ObjectMapper().readTree(json);
    assertEquals(rows.size(), root.size());
    Set<String> expected = Set.of("task", "source", "target", "method", "seed", "metric",
        "value", "ci_low", "ci_high", "n");
    for (JsonNode o : root) {
      Set<String> names = new TreeSet<>();
      for (Iterator<String> it = o.fieldNames(); it.hasNext(); ) {
        names.add(it.next());
      }
      assertEquals(new TreeSet<>(expected), names);
    }
    JsonNode titok = root.get(2);
    assertEquals("titok", titok.get("method").asText());
    assertEquals(1, titok.get("seed").asInt());
    assertEquals(0.5, titok.get("value").asDouble());
    assertEquals(0.2, titok.get("ci_low").asDouble());
    assertEquals(6, titok.get("n").asInt());
    assertTrue(root.get(1).get("ci_low").isNull(), "NaN bounds are written as null");
    assertEquals(rows, ComparisonReport.fromJson(json));
    assertEquals(new ArrayList<>(rows), ComparisonReport.fromJson(ComparisonReport.json(rows)));
  }

  @Test
  void refusesUnknownMetricsAndIncompleteJson() {
    assertThrows(IllegalArgumentException.class, () -> new ResultRow("t", "s", "g", "m", 0,
        "bleu", 0.1, 0, 1, 3));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> ComparisonReport.fromJson("[{\"task\":\"t\"}]"));
    assertTrue(e.getMessage().contains("entry 0") && e.getMessage().contains("source"),
        e.getMessage());
  }
}
