package org.loratransplant.report;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.FontMetrics;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.geom.AffineTransform;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import javax.imageio.ImageIO;

/**
 * A grouped bar chart of one metric: a grid of panels, one per task (row) and target (column),
 * one bar per method at its mean over seeds with a 95% interval as error bar. Drawn on a
 * {@link BufferedImage} so it needs no display; every panel shares the y scale so heights
 * compare across panels, and each method keeps its colour everywhere.
 */
public final class ComparisonPlot {
  public static final int WIDTH = 1200;
  public static final int HEIGHT = 800;

  /** Tableau 10, then 10 more: distinct colours for up to 20 methods (then they repeat). */
  private static final Color[] PALETTE = {new Color(0x4E79A7), new Color(0xF28E2B),
      new Color(0xE15759), new Color(0x76B7B2), new Color(0x59A14F), new Color(0xEDC948),
      new Color(0xB07AA1), new Color(0xFF9DA7), new Color(0x9C755F), new Color(0xBAB0AC),
      new Color(0x1F3A93), new Color(0xA05A00), new Color(0x8B1E3F), new Color(0x2A7F62),
      new Color(0x6B8E23), new Color(0x7D3C98), new Color(0xC0A000), new Color(0x3B9AB2),
      new Color(0x5D4037), new Color(0x666666)};
  static final Color BACKGROUND = Color.WHITE;
  private static final Color INK = new Color(0x222222);
  private static final Color GRID = new Color(0xDDDDDD);
  private static final Font TITLE = new Font(Font.SANS_SERIF, Font.BOLD, 22);
  private static final Font PANEL = new Font(Font.SANS_SERIF, Font.BOLD, 16);
  private static final Font AXIS = new Font(Font.SANS_SERIF, Font.PLAIN, 16);
  private static final Font LABEL = new Font(Font.SANS_SERIF, Font.PLAIN, 14);
  private static final Font TICK = new Font(Font.SANS_SERIF, Font.PLAIN, 13);
  /** Room left of the panels for the y axis title. */
  private static final int LEFT = 36;

  private ComparisonPlot() {}

  /** 1200x800 PNG of {@code metric}, methods in order of first appearance. */
  public static void png(List<ResultRow> rows, String metric, Path out) {
    png(rows, metric, List.of(), WIDTH, HEIGHT, out);
  }

  /** PNG of {@code metric} with the caller's method order (others follow), at a given size. */
  public static void png(List<ResultRow> rows, String metric, List<String> methods, int width,
      int height, Path out) {
    BufferedImage img = render(rows, metric, methods, width, height);
    try {
      Path abs = out.toAbsolutePath();
      Files.createDirectories(abs.getParent());
      Path tmp = Files.createTempFile(abs.getParent(), "." + abs.getFileName(), ".tmp");
      if (!ImageIO.write(img, "png", tmp.toFile())) {
        throw new IllegalStateException("no PNG writer available");
      }
      Files.move(tmp, abs, StandardCopyOption.REPLACE_EXISTING,
          StandardCopyOption.ATOMIC_MOVE);
    } catch (IOException e) {
      throw new IllegalStateException("cannot write " + out + ": " + e.getMessage(), e);
    }
  }

  /** The colour of the method at {@code index} in the plot's method order. */
  static Color color(int index) {
    return PALETTE[index % PALETTE.length];
  }

  /** Draws the chart; see {@link #png(List, String, List, int, int, Path)}. */
  public static BufferedImage render(List<ResultRow> rows, String metric, List<String> methods,
      int width, int height) {
    ResultRow.checkMetric(metric);
    if (width < 200 || height < 150) {
      throw new IllegalArgumentException("plot size " + width + "x" + height
          + " is too small (at least 200x150)");
    }
    List<ResultRow> picked = rows.stream().filter(r -> r.metric().equals(metric)).toList();
    if (picked.isEmpty()) {
      throw new IllegalArgumentException("no " + metric + " rows to plot");
    }
    List<MeanOverSeeds.Summary> sums = MeanOverSeeds.of(picked);
    LinkedHashSet<String> tasks = new LinkedHashSet<>();
    LinkedHashSet<String> targets = new LinkedHashSet<>();
    picked.forEach(r -> {
      tasks.add(r.task());
      targets.add(r.target());
    });
    List<String> order = order(picked, methods);
    double yMax = yMax(sums);

    BufferedImage img = new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB);
    Graphics2D g = img.createGraphics();
    try {
      g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
      g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING,
          RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
      g.setColor(BACKGROUND);
      g.fillRect(0, 0, width, height);

      g.setColor(INK);
      g.setFont(TITLE);
      String title = metric + " by method: mean over seeds, error bars = 95% interval";
      centre(g, title, width / 2, 32);
      g.setFont(AXIS);
      centre(g, "method", width / 2, height - 10);
      drawRotated(g, metric, 22, height / 2);

      // Every panel puts each method in the same slot, so only the bottom row needs names.
      int cols = targets.size();
      int rowsN = tasks.size();
      double pw = (double) (width - LEFT - 10) / cols;
      FontMetrics fmTick = g.getFontMetrics(TICK);
      int yAxisW = fmTick.stringWidth("0.00") + 14;
      double slot = (pw - yAxisW - 12) / order.size();
      Labels labels = labels(g.getFontMetrics(LABEL), order, slot, LEFT + yAxisW);
      int top = 48;
      double ph = (double) (height - 28 - labels.height() - top) / rowsN;
      int r = 0;
      for (String task : tasks) {
        int c = 0;
        for (String target : targets) {
          int x0 = (int) (LEFT + c * pw);
          int y0 = (int) (top + r * ph);
          panel(g, sums, task, target, metric, order, yMax, x0 + yAxisW, y0, slot,
              (int) (y0 + ph) - 16, r == rowsN - 1 ? labels : null);
          c++;
        }
        r++;
      }
    } finally {
      g.dispose();
    }
    return img;
  }

  /** How method names sit under the axis: rotated by {@code angle} (0: level) in a band. */
  private record Labels(double angle, int height) {}

  /**
   * Level names when each fits its slot; otherwise turned by at least 40 degrees, steeper when
   * neighbours would touch (slot * sin(angle) under a line's height) or when the first name
   * would run off the image's left edge.
   */
  private static Labels labels(FontMetrics fm, List<String> order, double slot,
      int firstAxisX) {
    int longest = 0;
    for (String m : order) {
      longest = Math.max(longest, fm.stringWidth(m));
    }
    if (longest <= slot - 6) {
      return new Labels(0, fm.getHeight() + 6);
    }
    double angle = Math.toRadians(40);
    angle = Math.max(angle, Math.asin(Math.min(1, (fm.getAscent() + 2) / slot)));
    double room = firstAxisX + slot / 2;
    if (longest * Math.cos(angle) > room) {
      angle = Math.max(angle, Math.acos(Math.min(1, room / longest)));
    }
    int h = (int) Math.ceil(longest * Math.sin(angle) + fm.getAscent() * Math.cos(angle)) + 10;
    return new Labels(angle, h);
  }

  private static void panel(Graphics2D g, List<MeanOverSeeds.Summary> sums, String task,
      String target, String metric, List<String> order, double yMax, int axisLeft, int y0,
      double slot, int axisY, Labels labels) {
    int plotW = (int) Math.round(slot * order.size());
    g.setColor(INK);
    g.setFont(PANEL);
    centre(g, task + " → " + target, axisLeft + plotW / 2, y0 + 20);
    FontMetrics fmTick = g.getFontMetrics(TICK);
    FontMetrics fmLabel = g.getFontMetrics(LABEL);
    int plotTop = y0 + 40;
    int plotH = Math.max(10, axisY - plotTop);

    // y grid and ticks, on the scale every panel shares
    double step = niceStep(yMax);
    g.setFont(TICK);
    int ticks = (int) Math.round(yMax / step);
    for (int k = 0; k <= ticks; k++) {
      double v = k * step;
      int y = axisY - (int) Math.round(v / yMax * plotH);
      g.setColor(GRID);
      g.drawLine(axisLeft, y, axisLeft + plotW, y);
      g.setColor(INK);
      String s = String.format(Locale.ROOT, "%." + decimals(step) + "f", v);
      g.drawString(s, axisLeft - 6 - fmTick.stringWidth(s), y + fmTick.getAscent() / 2 - 1);
    }
    g.setColor(INK);
    g.drawLine(axisLeft, plotTop, axisLeft, axisY);
    g.drawLine(axisLeft, axisY, axisLeft + plotW, axisY);

    int barW = (int) Math.max(4, Math.min(slot * 0.7, 90));
    boolean any = false;
    for (int i = 0; i < order.size(); i++) {
      String m = order.get(i);
      int cx = axisLeft + (int) Math.round(slot * (i + 0.5));
      if (labels != null) {
        g.setColor(INK);
        g.setFont(LABEL);
        if (labels.angle() == 0) {
          centre(g, m, cx, axisY + 6 + fmLabel.getAscent());
        } else {
          AffineTransform saved = g.getTransform();
          g.translate(cx + 4, axisY + 8 + fmLabel.getAscent() * Math.cos(labels.angle()));
          g.rotate(-labels.angle());
          g.drawString(m, -fmLabel.stringWidth(m), 0);
          g.setTransform(saved);
        }
      }
      MeanOverSeeds.Summary s = MeanOverSeeds.find(sums, task, target, m, metric);
      if (s == null) {
        continue;
      }
      any = true;
      int yMean = axisY - (int) Math.round(Math.max(0, s.mean()) / yMax * plotH);
      g.setColor(color(i));
      g.fillRect(cx - barW / 2, yMean, barW, axisY - yMean);
      int valueTop = yMean;
      if (!Double.isNaN(s.lo()) && !Double.isNaN(s.hi())) {
        // an interval reaching below 0 is cut at the axis
        int yLo = axisY - (int) Math.round(Math.max(0, s.lo()) / yMax * plotH);
        int yHi = axisY - (int) Math.round(Math.min(yMax, s.hi()) / yMax * plotH);
        int cap = Math.max(3, barW / 5);
        g.setColor(INK);
        g.setStroke(new BasicStroke(2f));
        g.drawLine(cx, yLo, cx, yHi);
        g.drawLine(cx - cap, yHi, cx + cap, yHi);
        g.drawLine(cx - cap, yLo, cx + cap, yLo);
        g.setStroke(new BasicStroke(1f));
        valueTop = Math.min(valueTop, yHi);
      }
      if (fmTick.stringWidth("0.000") < slot - 2) { // crowded panels drop the value labels
        g.setColor(INK);
        g.setFont(TICK);
        centre(g, String.format(Locale.ROOT, "%.3f", s.mean()), cx, valueTop - 6);
      }
    }
    if (!any) {
      g.setColor(INK);
      g.setFont(LABEL);
      centre(g, "no results", axisLeft + plotW / 2, plotTop + plotH / 2);
    }
  }

  /** The caller's order of the methods present, then the rest in order of appearance. */
  private static List<String> order(List<ResultRow> rows, List<String> methods) {
    LinkedHashSet<String> present = new LinkedHashSet<>();
    rows.forEach(r -> present.add(r.method()));
    List<String> out = new ArrayList<>();
    for (String m : methods) {
      if (present.remove(m)) {
        out.add(m);
      }
    }
    out.addAll(present);
    return out;
  }

  /** Top of the shared y axis: the largest mean or upper bound, rounded up to a tick. */
  static double yMax(List<MeanOverSeeds.Summary> sums) {
    double max = 0;
    for (MeanOverSeeds.Summary s : sums) {
      max = Math.max(max, s.mean());
      if (!Double.isNaN(s.hi())) {
        max = Math.max(max, s.hi());
      }
    }
    if (max <= 0) {
      return 1;
    }
    double step = niceStep(max);
    return Math.ceil(max / step - 1e-9) * step;
  }

  /** A tick step of 1, 2, 2.5 or 5 times a power of ten giving about 5 ticks up to max. */
  static double niceStep(double max) {
    double raw = max / 5;
    double pow = Math.pow(10, Math.floor(Math.log10(raw)));
    for (double f : new double[] {1, 2, 2.5, 5, 10}) {
      if (f * pow >= raw - 1e-12) {
        return f * pow;
      }
    }
    return 10 * pow;
  }

  /** Decimals that show every multiple of {@code step} exactly (0.025 needs 3). */
  static int decimals(double step) {
    for (int d = 1; d < 6; d++) {
      double scaled = step * Math.pow(10, d);
      if (Math.abs(scaled - Math.rint(scaled)) < 1e-6) {
        return d;
      }
    }
    return 6;
  }

  private static void centre(Graphics2D g, String s, int cx, int baseline) {
    g.drawString(s, cx - g.getFontMetrics().stringWidth(s) / 2, baseline);
  }

  private static void drawRotated(Graphics2D g, String s, int x, int cy) {
    AffineTransform saved = g.getTransform();
    g.translate(x, cy + g.getFontMetrics().stringWidth(s) / 2);
    g.rotate(-Math.PI / 2);
    g.drawString(s, 0, 0);
    g.setTransform(saved);
  }
}
