package org.loratransplant.discriminate;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Which scored rows survive: TransLoRA keeps the ones the discriminator believes real, either
 * every row at or above a score ({@link Threshold}) or a fixed share of the best ({@link
 * TopFraction}). Both return the kept rows in their input order; a NaN score or a repeated id is
 * an error naming the row, since either would make the choice depend on input order.
 */
public sealed interface Filter permits Filter.Threshold, Filter.TopFraction {

  /** The kept rows, in input order. */
  List<Scored> apply(List<Scored> scored);

  /** Keeps rows whose score is {@code >= minScore} (0 = the discriminator's even odds). */
  record Threshold(double minScore) implements Filter {
    public Threshold {
      if (Double.isNaN(minScore)) {
        throw new IllegalArgumentException(DiscriminatorSettings.KEY_PREFIX
            + "threshold must be a number, got NaN");
      }
    }

    @Override
    public List<Scored> apply(List<Scored> scored) {
      check(scored);
      List<Scored> out = new ArrayList<>();
      for (Scored s : scored) {
        if (s.score() >= minScore) {
          out.add(s);
        }
      }
      return out;
    }
  }

  /**
   * Keeps the {@code round(fraction x n)} best rows (half rounds up), ranked by score, highest
   * first, and among equal scores by ascending id, so the kept set never depends on input order.
   */
  record TopFraction(double fraction) implements Filter {
    public TopFraction {
      if (!(fraction > 0 && fraction <= 1)) {
        throw new IllegalArgumentException(DiscriminatorSettings.KEY_PREFIX
            + "keep-fraction must be in (0, 1], got " + fraction);
      }
    }

    /** How many of {@code n} rows are kept. */
    public int keepCount(int n) {
      return (int) Math.min(n, Math.round(fraction * n));
    }

    @Override
    public List<Scored> apply(List<Scored> scored) {
      check(scored);
      Integer[] order = new Integer[scored.size()];
      for (int i = 0; i < order.length; i++) {
        order[i] = i;
      }
      java.util.Arrays.sort(order, Comparator
          .comparingDouble((Integer i) -> -scored.get(i).score())
          .thenComparingLong(i -> scored.get(i).row().id()));
      boolean[] keep = new boolean[order.length];
      int k = keepCount(order.length);
      for (int r = 0; r < k; r++) {
        keep[order[r]] = true;
      }
      List<Scored> out = new ArrayList<>(k);
      for (int i = 0; i < keep.length; i++) {
        if (keep[i]) {
          out.add(scored.get(i));
        }
      }
      return out;
    }
  }

  private static void check(List<Scored> scored) {
    Set<Long> seen = new HashSet<>();
    for (Scored s : scored) {
      if (Double.isNaN(s.score())) {
        throw new IllegalArgumentException("row " + s.row().id() + " has a NaN score");
      }
      if (!seen.add(s.row().id())) {
        throw new IllegalArgumentException("row id " + s.row().id() + " occurs more than once; "
            + "ids break score ties and must be unique");
      }
    }
  }
}
