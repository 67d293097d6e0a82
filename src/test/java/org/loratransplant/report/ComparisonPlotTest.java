package org.loratransplant.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ComparisonPlotTest {

  private static List<ResultRow> grid() {
    String[] methods = {"vanilla", "expert", "sft", "kd", "kd_mined", "translora", "titok",
        "titok_no_filter"};
    List<ResultRow> rows = new ArrayList<>();
    for (String task : List.of("arith", "boolq")) {
      for (String target : List.of("llama2xs", "babyllama-tok105")) {
        for (int m = 0; m < methods.length; m++) {
          int seeds = methods[m].equals("vanilla") ? 1 : 3;
          for (int s = 0; s < seeds; s++) {
            double v = 0.1 + 0.07 * m + 0.02 * s + (task.equals("boolq") ? 0.1 : 0);
            rows.add(new ResultRow(task, "stories260K", target, methods[m], s, "exact_match", v,
                v - 0.08, v + 0.08, 100));
          }
        }
      }
    }
    return rows;
  }

  private static int count(BufferedImage img, int rgb) {
    int n = 0;
    for (int y = 0; y < img.getHeight(); y++) {
      for (int x = 0; x < img.getWidth(); x++) {
        if ((img.getRGB(x, y) & 0xFFFFFF) == (rgb & 0xFFFFFF)) {
          n++;
        }
      }
    }
    return n;
  }

  @Test
  void pngDecodesAtTheRequestedSizeWithBarsDrawn(@TempDir Path dir) throws Exception {
    Path out = dir.resolve("plots/exact_match.png");
    ComparisonPlot.png(grid(), "exact_match", out);
    BufferedImage img = ImageIO.read(out.toFile());
    assertEquals(1200, img.getWidth());
    assertEquals(800, img.getHeight());
    int background = ComparisonPlot.BACKGROUND.getRGB();
    int ink = img.getWidth() * img.getHeight() - count(img, background);
    assertTrue(ink > 0.1 * img.getWidth() * img.getHeight(), "mostly blank: " + ink);
    // every one of the 8 methods has a bar of its own colour in all 4 panels
    for (int m = 0; m < 8; m++) {
      assertTrue(count(img, ComparisonPlot.color(m).getRGB()) > 4 * 200,
          "method " + m + " has no visible bars");
    }
  }

  @Test
  void barAreasAreProportionalToTheMeans() {
    // one panel, two methods: means 0.2 and 0.6 over 2 seeds each, same bar width
    List<ResultRow> rows = List.of(
        new ResultRow("t", "s", "g", "a", 1, "rouge1", 0.15, 0.1, 0.2, 10),
        new ResultRow("t", "s", "g", "a", 2, "rouge1", 0.25, 0.2, 0.3, 10),
        new ResultRow("t", "s", "g", "b", 1, "rouge1", 0.6, 0.5, 0.7, 10),
        new ResultRow("t", "s", "g", "b", 2, "rouge1", 0.6, 0.5, 0.7, 10));
    BufferedImage img = ComparisonPlot.render(rows, "rouge1", List.of(), 1200, 800);
    int a = count(img, ComparisonPlot.color(0).getRGB());
    int b = count(img, ComparisonPlot.color(1).getRGB());
    assertTrue(a > 1000, "bar a: " + a);
    // the error bar's 2-px line covers part of a; b's interval is a single point (2 equal seeds)
    assertEquals(3.0, (double) b / a, 0.15);
  }

  @Test
  void niceAxisTops() {
    assertEquals(0.05, ComparisonPlot.niceStep(0.21), 1e-12);
    assertEquals(0.2, ComparisonPlot.niceStep(0.85), 1e-12);
    assertEquals(0.025, ComparisonPlot.niceStep(0.11), 1e-12);
    assertEquals(3, ComparisonPlot.decimals(0.025));
    assertEquals(1, ComparisonPlot.decimals(0.2));
    assertEquals(1.0, ComparisonPlot.yMax(MeanOverSeeds.of(List.of(new ResultRow("t", "s", "g",
        "a", 1, "exact_match", 0.5, 0.3, 0.85, 10)))), 1e-12);
  }

  @Test
  void refusesAMetricWithoutRows(@TempDir Path dir) {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> ComparisonPlot.png(grid(), "rougeL", dir.resolve("x.png")));
    assertTrue(e.getMessage().contains("rougeL"), e.getMessage());
  }

  @Test
  void longNamesInACrowdedGridStayInsideTheImage() {
    List<ResultRow> many = new ArrayList<>();
    for (String task : List.of("arith", "boolq", "date_understanding")) {
      for (String target : List.of("llama2xs", "babyllama-tok105", "stories15M")) {
        for (int m = 0; m < 11; m++) {
          for (int s = 0; s < 2; s++) {
            double v = 0.05 * m + 0.03 * s;
            many.add(new ResultRow(task, "stories260K", target, "method_" + m + "_ablation", s,
                "rougeL", v, Math.max(0, v - 0.1), v + 0.1, 100));
          }
        }
      }
    }
    BufferedImage img = ComparisonPlot.render(many, "rougeL", List.of(), 1200, 800);
    // the first rotated name ends left of its bar: it must not be cut by the image edge
    for (int y = 0; y < img.getHeight(); y++) {
      for (int x = 0; x < 3; x++) {
        assertEquals(ComparisonPlot.BACKGROUND.getRGB() & 0xFFFFFF, img.getRGB(x, y) & 0xFFFFFF,
            "ink at the left edge, (" + x + ", " + y + ")");
      }
    }
    // 11 methods x 9 panels: each method's colour is drawn
    for (int m = 0; m < 11; m++) {
      assertTrue(count(img, ComparisonPlot.color(m).getRGB()) > 9 * 10, "method " + m);
    }
  }
}
