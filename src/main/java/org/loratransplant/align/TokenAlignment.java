package org.loratransplant.align;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * Carries per-token scores from a source tokenization to a target tokenization of the same text
 * (TiTok step 5, with the conventions of the authors' {@code tokenizer_align.py}).
 *
 * <h2>Inputs</h2>
 * Each token is given as the text it decodes to on its own ({@code "▁the"} decodes to
 * {@code " the"}; special tokens decode to {@code ""}), so any tokenizer pair works. Scores are
 * one finite double per source token (a 0/1 mask or the excess itself).
 *
 * <h2>Normalisation</h2>
 * {@link #normalise} deletes every whitespace character (Python's {@code str.isspace()} set:
 * {@code ' '}, {@code \n}, {@code \t}, {@code \r}, no-break spaces, ...) and the SentencePiece
 * marker {@code '▁'}, wherever they occur. The authors strip the ends and delete only
 * {@code ' '}, {@code \n}, {@code \t} inside; deleting all of them everywhere gives the same
 * result on ordinary text and makes normalisation commute with concatenation, so a boundary that
 * one tokenizer puts before a {@code \r} and the other after it cannot cause a false mismatch.
 * A token that normalises to {@code ""} (special token, pure whitespace) is an <em>empty</em>
 * token.
 *
 * <h2>Walk</h2>
 * Let S and T be the concatenated normalised texts. Two pointers start at a common boundary
 * (same character offset in S and T, texts agreeing so far):
 * <ol>
 *   <li><b>Empty runs.</b> If both sides have a run of empty tokens here, the runs pair up as
 *       matched spans of their own: token by token when the runs are equally long (so identical
 *       tokenizations map identically), else as one span. A run on one side only joins the span
 *       that follows; at the very end it joins the preceding span instead.</li>
 *   <li><b>Grow.</b> Add tokens to the side whose accumulated normalised text is shorter (the
 *       source when both are empty), empty tokens riding along inside the span, until both
 *       sides have consumed the same non-zero number of characters. If the characters agree, the
 *       pair is a matched span (the shortest one possible; later empty tokens are left for the
 *       next span).</li>
 *   <li><b>Divergence and re-synchronisation.</b> If the characters disagree or a side runs out,
 *       the walk looks for the nearest <em>anchor</em>: a pair of token boundaries
 *       {@code (i', j')} at or after the current ones, not both unchanged, minimising the number
 *       of skipped normalised characters on both sides together (ties: fewer skipped source
 *       characters), such that from there the next {@code min(resyncChars, rest of S, rest of T)}
 *       characters (at least 1) agree and a matched span can be grown; the end of both texts is
 *       always an anchor. Everything skipped becomes one unmatched span pair (one of its ranges
 *       may be empty: an insertion or deletion), and the walk resumes at the anchor. Requiring
 *       {@code resyncChars} (default {@value #DEFAULT_RESYNC_CHARS}) agreeing characters keeps a
 *       coincidental short match inside differing text from being taken as re-synchronisation.
 *       </li>
 * </ol>
 * When S equals T (the normal case: the same text under two tokenizers) every span is matched
 * and the spans are exactly the pieces between consecutive shared token boundaries.
 *
 * <h2>Propagation</h2>
 * A matched span gives each of its target tokens the mean of its source scores: one-to-one
 * copies, one-to-many copies to every target token, many-to-one and many-to-many average (the
 * mean includes empty tokens inside the span, as in the authors' code). Target tokens of
 * unmatched spans get 0. The result is fractional; the final target mask comes from a top-k%
 * selection ({@code org.loratransplant.select.TokenSelection}).
 *
 * <p>Known limit: a byte-level token holding part of a multi-byte character decodes to U+FFFD,
 * so the two decoded texts differ around such characters; the affected words become a small
 * unmatched region (target score 0) and the walk re-synchronises right after it.
 *
 * <p>Cost: linear in the text length when the texts agree; each divergence costs at most
 * (remaining source tokens) x (remaining target tokens) boundary checks, pruned by the best
 * anchor found so far.
 */
public final class TokenAlignment {

    /** Characters that must agree after a candidate re-synchronisation point. */
    public static final int DEFAULT_RESYNC_CHARS = 8;

    private static final char SENTENCEPIECE_SPACE = '\u2581';

    private TokenAlignment() {
    }

    /**
     * The normalised form of one decoded token: all whitespace (as Python's
     * {@code str.isspace()}) and {@code '▁'} removed.
     */
    public static String normalise(String decodedToken) {
        Objects.requireNonNull(decodedToken, "decodedToken");
        StringBuilder sb = null;
        for (int i = 0; i < decodedToken.length(); ) {
            int cp = decodedToken.codePointAt(i);
            int width = Character.charCount(cp);
            if (cp == SENTENCEPIECE_SPACE || isPythonSpace(cp)) {
                if (sb == null) {
                    sb = new StringBuilder(decodedToken.length());
                    sb.append(decodedToken, 0, i);
                }
            } else if (sb != null) {
                sb.appendCodePoint(cp);
            }
            i += width;
        }
        return sb == null ? decodedToken : sb.toString();
    }

    /** Python's {@code str.isspace()} for one code point: category Zs, or bidi class WS, B or S. */
    static boolean isPythonSpace(int cp) {
        if (Character.getType(cp) == Character.SPACE_SEPARATOR) {
            return true;
        }
        byte d = Character.getDirectionality(cp);
        return d == Character.DIRECTIONALITY_WHITESPACE
                || d == Character.DIRECTIONALITY_PARAGRAPH_SEPARATOR
                || d == Character.DIRECTIONALITY_SEGMENT_SEPARATOR;
    }

    /** {@link #align(List, double[], List, int)} with {@link #DEFAULT_RESYNC_CHARS}. */
    public static Alignment align(List<String> sourceTokens, double[] sourceScores, List<String> targetTokens) {
        return align(sourceTokens, sourceScores, targetTokens, DEFAULT_RESYNC_CHARS);
    }

    /**
     * Aligns the two token sequences and propagates the scores.
     *
     * @param sourceTokens decoded source tokens
     * @param sourceScores one finite score per source token
     * @param targetTokens decoded target tokens
     * @param resyncChars characters that must agree after a re-synchronisation point, &gt;= 1
     * @return target scores, span pairs and counts
     * @throws IllegalArgumentException if the score count differs from the source token count,
     *     a score is not finite, or resyncChars &lt; 1
     */
    public static Alignment align(List<String> sourceTokens, double[] sourceScores, List<String> targetTokens,
                                  int resyncChars) {
        Objects.requireNonNull(sourceTokens, "sourceTokens");
        Objects.requireNonNull(sourceScores, "sourceScores");
        Objects.requireNonNull(targetTokens, "targetTokens");
        if (sourceScores.length != sourceTokens.size()) {
            throw new IllegalArgumentException("got " + sourceScores.length + " source scores for "
                    + sourceTokens.size() + " source tokens");
        }
        for (int i = 0; i < sourceScores.length; i++) {
            if (!Double.isFinite(sourceScores[i])) {
                throw new IllegalArgumentException("source score at position " + i + " is " + sourceScores[i]);
            }
        }
        if (resyncChars < 1) {
            throw new IllegalArgumentException("resyncChars must be >= 1, got " + resyncChars);
        }
        List<SpanPair> spans = new Walk(normaliseAll(sourceTokens, "source"),
                normaliseAll(targetTokens, "target"), resyncChars).run();

        double[] target = new double[targetTokens.size()];
        int matched = 0;
        int unmatchedTarget = 0;
        for (SpanPair s : spans) {
            if (!s.matched()) {
                unmatchedTarget += s.targetLength();
                continue; // target scores stay 0
            }
            matched++;
            double sum = 0.0;
            for (int i = s.sourceStart(); i < s.sourceEnd(); i++) {
                sum += sourceScores[i];
            }
            double mean = sum / s.sourceLength();
            for (int j = s.targetStart(); j < s.targetEnd(); j++) {
                target[j] = mean;
            }
        }
        return new Alignment(target, spans, matched, unmatchedTarget);
    }

    private static String[] normaliseAll(List<String> tokens, String side) {
        String[] out = new String[tokens.size()];
        for (int i = 0; i < out.length; i++) {
            String t = tokens.get(i);
            if (t == null) {
                throw new NullPointerException(side + " token at position " + i + " is null");
            }
            out[i] = normalise(t);
        }
        return out;
    }

    /** The two-pointer walk over one pair of normalised token sequences. */
    private static final class Walk {
        private final int n;
        private final int m;
        private final String s;
        private final String t;
        /** bs[i]: offset in s where source token i starts; bs[n] = s.length(). */
        private final int[] bs;
        private final int[] bt;
        private final int resyncChars;
        private final List<SpanPair> spans = new ArrayList<>();

        Walk(String[] source, String[] target, int resyncChars) {
            this.n = source.length;
            this.m = target.length;
            this.bs = new int[n + 1];
            this.bt = new int[m + 1];
            this.s = concat(source, bs);
            this.t = concat(target, bt);
            this.resyncChars = resyncChars;
        }

        private static String concat(String[] tokens, int[] offsets) {
            StringBuilder sb = new StringBuilder();
            for (int i = 0; i < tokens.length; i++) {
                offsets[i] = sb.length();
                sb.append(tokens[i]);
            }
            offsets[tokens.length] = sb.length();
            return sb.toString();
        }

        private boolean sourceEmpty(int i) {
            return bs[i + 1] == bs[i];
        }

        private boolean targetEmpty(int j) {
            return bt[j + 1] == bt[j];
        }

        List<SpanPair> run() {
            int i = 0;
            int j = 0;
            while (i < n || j < m) {
                // (i, j) is a common boundary: step 1, empty runs.
                int i2 = i;
                while (i2 < n && sourceEmpty(i2)) {
                    i2++;
                }
                int j2 = j;
                while (j2 < m && targetEmpty(j2)) {
                    j2++;
                }
                boolean onlyEmptiesLeft = i2 == n && j2 == m;
                if (i2 > i && j2 > j) {
                    pairEmptyRuns(i, i2, j, j2);
                    i = i2;
                    j = j2;
                    continue;
                }
                if (onlyEmptiesLeft) {
                    // A one-sided trailing run: attach it to the preceding span.
                    if (spans.isEmpty()) {
                        spans.add(new SpanPair(i, n, j, m, false));
                    } else {
                        SpanPair last = spans.remove(spans.size() - 1);
                        spans.add(new SpanPair(last.sourceStart(), n, last.targetStart(), m, last.matched()));
                    }
                    break;
                }
                // Step 2: grow a matched span (a one-sided empty run rides along in it).
                int[] end = grow(i, j);
                if (end != null) {
                    spans.add(new SpanPair(i, end[0], j, end[1], true));
                    i = end[0];
                    j = end[1];
                    continue;
                }
                // Step 3: diverged; skip to the nearest anchor.
                int[] anchor = findAnchor(i, j);
                spans.add(new SpanPair(i, anchor[0], j, anchor[1], false));
                i = anchor[0];
                j = anchor[1];
            }
            return spans;
        }

        private void pairEmptyRuns(int i, int i2, int j, int j2) {
            if (i2 - i == j2 - j) {
                for (int k = 0; k < i2 - i; k++) {
                    spans.add(new SpanPair(i + k, i + k + 1, j + k, j + k + 1, true));
                }
            } else {
                spans.add(new SpanPair(i, i2, j, j2, true));
            }
        }

        /**
         * The shortest matched span starting at (i0, j0), as {end source, end target}, or null if
         * the texts disagree or a side runs out first.
         */
        private int[] grow(int i0, int j0) {
            int i = i0;
            int j = j0;
            int a = 0;
            int b = 0;
            int checked = 0;
            while (true) {
                if (a == b && a > 0) {
                    return new int[] {i, j};
                }
                if (a <= b) {
                    if (i == n) {
                        return null;
                    }
                    i++;
                    a = bs[i] - bs[i0];
                } else {
                    if (j == m) {
                        return null;
                    }
                    j++;
                    b = bt[j] - bt[j0];
                }
                int upTo = Math.min(a, b);
                for (; checked < upTo; checked++) {
                    if (s.charAt(bs[i0] + checked) != t.charAt(bt[j0] + checked)) {
                        return null;
                    }
                }
            }
        }

        /**
         * The re-synchronisation point after a divergence at (i0, j0): the anchor with the fewest
         * skipped characters (ties: fewer source characters). Boundaries are taken at the first
         * token index with a given offset, so empty tokens before an anchor stay with what follows.
         */
        private int[] findAnchor(int i0, int j0) {
            int s0 = bs[i0];
            int t0 = bt[j0];
            int[] best = null;
            long bestCost = Long.MAX_VALUE;
            for (int i = i0; i <= n; i++) {
                if (i > i0 && bs[i] == bs[i - 1]) {
                    continue; // same offset as an earlier index
                }
                long skipS = bs[i] - s0;
                if (skipS >= bestCost) {
                    break;
                }
                for (int j = j0; j <= m; j++) {
                    if (j > j0 && bt[j] == bt[j - 1]) {
                        continue;
                    }
                    long cost = skipS + (bt[j] - t0);
                    if (cost >= bestCost) {
                        break;
                    }
                    if (cost > 0 && isAnchor(i, j)) {
                        best = new int[] {i, j};
                        bestCost = cost;
                        break; // any later j costs more
                    }
                }
            }
            // The end of both texts always qualifies, so best is set.
            return best;
        }

        private boolean isAnchor(int i, int j) {
            int restS = s.length() - bs[i];
            int restT = t.length() - bt[j];
            if (restS == 0 && restT == 0) {
                return true;
            }
            int look = Math.min(resyncChars, Math.min(restS, restT));
            if (look == 0) {
                return false;
            }
            if (!s.regionMatches(bs[i], t, bt[j], look)) {
                return false;
            }
            return grow(i, j) != null;
        }
    }
}
