package org.loratransplant.discriminate;

/** A row with its discriminator score, {@code log P(real) - log P(synthetic)}. */
public record Scored(Labelled row, double score) {

  /** Pairs rows with scores in order. */
  public static java.util.List<Scored> of(java.util.List<Labelled> rows, double[] scores) {
    if (rows.size() != scores.length) {
      throw new IllegalArgumentException(rows.size() + " rows but " + scores.length + " scores");
    }
    java.util.List<Scored> out = new java.util.ArrayList<>(rows.size());
    for (int i = 0; i < scores.length; i++) {
      out.add(new Scored(rows.get(i), scores[i]));
    }
    return out;
  }
}
