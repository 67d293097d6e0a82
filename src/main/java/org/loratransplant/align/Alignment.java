package org.loratransplant.align;

import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * The result of aligning one sample.
 *
 * @param targetScores one score per target token (copies in and out: the array is not shared)
 * @param spans span pairs in order; they partition both token sequences
 * @param matchedSpans number of matched span pairs
 * @param unmatchedTargetTokens number of target tokens in unmatched span pairs (they score 0)
 */
public record Alignment(double[] targetScores, List<SpanPair> spans, int matchedSpans, int unmatchedTargetTokens) {

    /** Defensive copies, so a stored alignment cannot change under its owner. */
    public Alignment {
        targetScores = Objects.requireNonNull(targetScores, "targetScores").clone();
        spans = List.copyOf(spans);
    }

    /** A copy of the per-target-token scores. */
    @Override
    public double[] targetScores() {
        return targetScores.clone();
    }

    /** How many span pairs fall under each rule (every kind present, zeros included). */
    public Map<SpanKind, Integer> kindCounts() {
        Map<SpanKind, Integer> counts = new EnumMap<>(SpanKind.class);
        for (SpanKind k : SpanKind.values()) {
            counts.put(k, 0);
        }
        for (SpanPair s : spans) {
            counts.merge(s.kind(), 1, Integer::sum);
        }
        return counts;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Alignment a
                && Arrays.equals(targetScores, a.targetScores)
                && spans.equals(a.spans)
                && matchedSpans == a.matchedSpans
                && unmatchedTargetTokens == a.unmatchedTargetTokens;
    }

    @Override
    public int hashCode() {
        return Objects.hash(Arrays.hashCode(targetScores), spans, matchedSpans, unmatchedTargetTokens);
    }

    @Override
    public String toString() {
        return "Alignment[targetScores=" + Arrays.toString(targetScores) + ", spans=" + spans
                + ", matchedSpans=" + matchedSpans + ", unmatchedTargetTokens=" + unmatchedTargetTokens + "]";
    }
}
