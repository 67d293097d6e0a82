package org.loratransplant.align;

/**
 * One aligned span pair: source tokens {@code [sourceStart, sourceEnd)} and target tokens
 * {@code [targetStart, targetEnd)}. A matched pair covers the same normalised text on both sides
 * (possibly the empty text, for paired special/whitespace tokens); an unmatched pair covers a
 * region where the texts differ, and one of its ranges may be empty (text only one side has).
 *
 * @param sourceStart first source token, inclusive
 * @param sourceEnd last source token, exclusive
 * @param targetStart first target token, inclusive
 * @param targetEnd last target token, exclusive
 * @param matched whether the normalised texts of the two ranges are equal
 */
public record SpanPair(int sourceStart, int sourceEnd, int targetStart, int targetEnd, boolean matched) {

    /** Rejects inverted or negative ranges. */
    public SpanPair {
        if (sourceStart < 0 || sourceEnd < sourceStart) {
            throw new IllegalArgumentException("bad source range [" + sourceStart + ", " + sourceEnd + ")");
        }
        if (targetStart < 0 || targetEnd < targetStart) {
            throw new IllegalArgumentException("bad target range [" + targetStart + ", " + targetEnd + ")");
        }
        if (matched && (sourceEnd == sourceStart || targetEnd == targetStart)) {
            throw new IllegalArgumentException("a matched span needs tokens on both sides: " + sourceStart + ".."
                    + sourceEnd + " / " + targetStart + ".." + targetEnd);
        }
    }

    /** Number of source tokens. */
    public int sourceLength() {
        return sourceEnd - sourceStart;
    }

    /** Number of target tokens. */
    public int targetLength() {
        return targetEnd - targetStart;
    }

    /** Which propagation rule applies (counting every token, empty-normalised ones included). */
    public SpanKind kind() {
        if (!matched) {
            return SpanKind.UNMATCHED;
        }
        if (sourceLength() == 1) {
            return targetLength() == 1 ? SpanKind.ONE_TO_ONE : SpanKind.ONE_TO_MANY;
        }
        return targetLength() == 1 ? SpanKind.MANY_TO_ONE : SpanKind.MANY_TO_MANY;
    }
}
