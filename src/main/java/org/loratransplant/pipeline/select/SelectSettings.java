package org.loratransplant.pipeline.select;

import java.io.Serializable;
import java.util.List;
import java.util.Map;
import org.loratransplant.select.TokenSelection;

/**
 * What the select stage (and the target-side selection after alignment) depends on.
 *
 * @param samples M, the samples kept for training
 * @param sampleFilter {@code excess}: top-M by mean excess (the paper); {@code balanced}: top-M by
 *     mean excess within each answer class, classes in the shares of the task's training split;
 *     {@code none}: the filter off, the first M by sample id
 * @param tokenMode {@code top-k} (the paper), {@code all} (k = 100 %: plain SFT on the samples),
 *     {@code random} (as many tokens as top-k, at random), {@code word} (top-k % of words, a
 *     word's pieces kept or dropped together)
 * @param structural how the trailing newline and eos are treated: {@code rank} with the content
 *     (the paper), {@code keep} always in the loss, {@code drop} never
 * @param perBatch select per group of {@code group} consecutive ranks (the authors' code) instead
 *     of per sample
 * @param classCounts answer class to its count in the training split (balanced filter)
 */
public record SelectSettings(String sourceModel, int samples, String sampleFilter,
    String tokenMode, double kPercent, boolean perBatch, int group, String structural, long seed,
    Map<String, Long> classCounts) implements Serializable {

  public static final List<String> SAMPLE_FILTERS = List.of("excess", "balanced", "none");
  public static final List<String> TOKEN_MODES = List.of("top-k", "all", "random", "word");
  public static final List<String> STRUCTURAL = List.of("rank", "keep", "drop");

  public SelectSettings {
    if (samples < 1) {
      throw new IllegalArgumentException("samples (M) must be >= 1, got " + samples);
    }
    check("sample-filter", sampleFilter, SAMPLE_FILTERS);
    check("token-selection", tokenMode, TOKEN_MODES);
    check("structural-tokens", structural, STRUCTURAL);
    TokenSelection.checkK(kPercent);
    if (group < 1) {
      throw new IllegalArgumentException("selection group must be >= 1, got " + group);
    }
    // Sorted: the record's text is part of the select stage's key, and Map.copyOf's iteration
    // order changes from JVM to JVM (a rerun in a new JVM redid complete stages).
    classCounts = java.util.Collections.unmodifiableMap(new java.util.TreeMap<>(classCounts));
  }

  private static void check(String key, String value, List<String> allowed) {
    if (!allowed.contains(value)) {
      throw new IllegalArgumentException(key + " must be one of " + allowed + ", got '" + value
          + "'");
    }
  }

  /**
   * The token policy: the paper's top-k ranks structural tokens with the content and has no
   * at-least-one-content rule; the other structural policies keep at least one content token.
   */
  public org.loratransplant.select.SelectionPolicy policy() {
    return org.loratransplant.select.SelectionPolicy.of(tokenMode, kPercent,
        perBatch ? "group" : "sample", structural, seed, !structural.equals("rank"));
  }

  /** The same settings with another k and M (a tuning candidate). */
  public SelectSettings with(double k, int m) {
    return new SelectSettings(sourceModel, m, sampleFilter, tokenMode, k, perBatch, group,
        structural, seed, classCounts);
  }
}
