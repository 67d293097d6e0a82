package org.loratransplant.align;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** Randomised checks of the alignment's invariants on texts split two different ways. */
class TokenAlignmentPropertyTest {

    /** Same text, two random tokenizations (special and whitespace tokens included). */
    @Test
    void sameTextSplitTwoWays() {
        Random rnd = new Random(20240601);
        for (int trial = 0; trial < 500; trial++) {
            String text = TokenAlignmentTest.randomText(rnd, 1 + rnd.nextInt(80));
            List<String> src = TokenAlignmentTest.randomSplit(text, rnd, true);
            List<String> tgt = TokenAlignmentTest.randomSplit(text, rnd, true);
            double[] scores = rnd.doubles(src.size()).toArray();
            Alignment a = TokenAlignment.align(src, scores, tgt);
            String ctx = src + " / " + tgt;

            checkInvariants(src, scores, tgt, a, ctx);
            assertEquals(a.spans().size(), a.matchedSpans(), ctx);
            assertEquals(0, a.unmatchedTargetTokens(), ctx);
            for (SpanPair s : a.spans()) {
                assertTrue(s.matched(), ctx + " " + s);
                assertMinimal(src, tgt, s, ctx);
            }
        }
    }

    /**
     * Same text except one edited region, token-aligned on both sides and written in disjoint
     * alphabets (source digits 0-4, target digits 5-9, shared text letters): exactly the edited
     * tokens are unmatched, and everything after the edit is matched again.
     */
    @Test
    void editedRegionIsTheOnlyUnmatchedSpan() {
        Random rnd = new Random(77);
        for (int trial = 0; trial < 500; trial++) {
            String prefix = letters(rnd, rnd.nextInt(30));
            String srcEdit = digits(rnd, rnd.nextInt(8), '0');
            String tgtEdit = digits(rnd, srcEdit.isEmpty() ? 1 + rnd.nextInt(8) : rnd.nextInt(8), '5');
            String suffix = letters(rnd, 1 + rnd.nextInt(30));

            List<String> src = new ArrayList<>();
            List<String> tgt = new ArrayList<>();
            src.addAll(TokenAlignmentTest.randomSplit(prefix, rnd, false));
            tgt.addAll(TokenAlignmentTest.randomSplit(prefix, rnd, false));
            int srcEditStart = src.size();
            int tgtEditStart = tgt.size();
            src.addAll(TokenAlignmentTest.randomSplit(srcEdit, rnd, false));
            tgt.addAll(TokenAlignmentTest.randomSplit(tgtEdit, rnd, false));
            int srcEditEnd = src.size();
            int tgtEditEnd = tgt.size();
            src.addAll(TokenAlignmentTest.randomSplit(suffix, rnd, false));
            tgt.addAll(TokenAlignmentTest.randomSplit(suffix, rnd, false));

            double[] scores = new double[src.size()];
            for (int i = 0; i < scores.length; i++) {
                scores[i] = 1 + rnd.nextInt(9); // > 0, so a 0 target score can only mean unmatched
            }
            Alignment a = TokenAlignment.align(src, scores, tgt);
            String ctx = src + " / " + tgt;
            checkInvariants(src, scores, tgt, a, ctx);

            List<SpanPair> unmatched = a.spans().stream().filter(s -> !s.matched()).toList();
            assertEquals(List.of(new SpanPair(srcEditStart, srcEditEnd, tgtEditStart, tgtEditEnd, false)),
                    unmatched, ctx);
            double[] t = a.targetScores();
            for (int j = 0; j < t.length; j++) {
                boolean inEdit = j >= tgtEditStart && j < tgtEditEnd;
                assertEquals(inEdit, t[j] == 0.0, ctx + " target " + j);
            }
        }
    }

    /** Unrelated and lightly perturbed texts: only the invariants, and termination. */
    @Test
    void arbitraryTextsKeepTheInvariants() {
        Random rnd = new Random(4242);
        for (int trial = 0; trial < 500; trial++) {
            String a = TokenAlignmentTest.randomText(rnd, rnd.nextInt(60));
            String b = rnd.nextBoolean() ? TokenAlignmentTest.randomText(rnd, rnd.nextInt(60)) : perturb(a, rnd);
            List<String> src = TokenAlignmentTest.randomSplit(a, rnd, true);
            List<String> tgt = TokenAlignmentTest.randomSplit(b, rnd, true);
            double[] scores = rnd.doubles(src.size()).toArray();
            int look = 1 + rnd.nextInt(10);
            Alignment al = TokenAlignment.align(src, scores, tgt, look);
            checkInvariants(src, scores, tgt, al, src + " / " + tgt + " look " + look);
        }
    }

    /**
     * Spans partition both sequences in order; matched spans have equal normalised text and give
     * each target token the mean of the span's source scores; unmatched ones give 0; counts agree.
     */
    static void checkInvariants(List<String> src, double[] scores, List<String> tgt, Alignment a, String ctx) {
        int s = 0;
        int t = 0;
        int matched = 0;
        int unmatchedTarget = 0;
        double[] out = a.targetScores();
        assertEquals(tgt.size(), out.length, ctx);
        for (SpanPair p : a.spans()) {
            assertEquals(s, p.sourceStart(), ctx + " source gap/overlap at " + p);
            assertEquals(t, p.targetStart(), ctx + " target gap/overlap at " + p);
            assertTrue(p.sourceLength() + p.targetLength() > 0, ctx + " empty span " + p);
            s = p.sourceEnd();
            t = p.targetEnd();
            if (p.matched()) {
                matched++;
                assertEquals(normalised(src, p.sourceStart(), p.sourceEnd()),
                        normalised(tgt, p.targetStart(), p.targetEnd()), ctx + " " + p);
                double sum = 0;
                for (int i = p.sourceStart(); i < p.sourceEnd(); i++) {
                    sum += scores[i];
                }
                double mean = sum / p.sourceLength();
                for (int j = p.targetStart(); j < p.targetEnd(); j++) {
                    assertEquals(mean, out[j], 0.0, ctx + " target " + j);
                }
            } else {
                unmatchedTarget += p.targetLength();
                for (int j = p.targetStart(); j < p.targetEnd(); j++) {
                    assertEquals(0.0, out[j], 0.0, ctx + " target " + j);
                }
            }
        }
        assertEquals(src.size(), s, ctx + " source not covered");
        assertEquals(tgt.size(), t, ctx + " target not covered");
        assertEquals(matched, a.matchedSpans(), ctx);
        assertEquals(unmatchedTarget, a.unmatchedTargetTokens(), ctx);
    }

    /** A matched span with text has no shared token boundary strictly inside its text. */
    private static void assertMinimal(List<String> src, List<String> tgt, SpanPair p, String ctx) {
        Set<Integer> srcCuts = cuts(src, p.sourceStart(), p.sourceEnd());
        Set<Integer> tgtCuts = cuts(tgt, p.targetStart(), p.targetEnd());
        int len = normalised(src, p.sourceStart(), p.sourceEnd()).length();
        srcCuts.retainAll(tgtCuts);
        srcCuts.removeIf(c -> c == 0 || c == len);
        assertTrue(srcCuts.isEmpty(), ctx + " span " + p + " could be split at " + srcCuts);
    }

    private static Set<Integer> cuts(List<String> tokens, int from, int to) {
        Set<Integer> out = new HashSet<>();
        int off = 0;
        for (int i = from; i < to; i++) {
            off += TokenAlignment.normalise(tokens.get(i)).length();
            out.add(off);
        }
        return out;
    }

    private static String normalised(List<String> tokens, int from, int to) {
        StringBuilder sb = new StringBuilder();
        for (int i = from; i < to; i++) {
            sb.append(TokenAlignment.normalise(tokens.get(i)));
        }
        return sb.toString();
    }

    private static String letters(Random rnd, int n) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < n; i++) {
            sb.append((char) ('a' + rnd.nextInt(6)));
        }
        return sb.toString();
    }

    private static String digits(Random rnd, int n, char base) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < n; i++) {
            sb.append((char) (base + rnd.nextInt(5)));
        }
        return sb.toString();
    }

    private static String perturb(String a, Random rnd) {
        StringBuilder sb = new StringBuilder(a);
        int edits = 1 + rnd.nextInt(3);
        for (int e = 0; e < edits && sb.length() > 0; e++) {
            int at = rnd.nextInt(sb.length());
            if (Character.isSurrogate(sb.charAt(at))) {
                continue;
            }
            switch (rnd.nextInt(3)) {
                case 0 -> sb.setCharAt(at, 'z');
                case 1 -> sb.deleteCharAt(at);
                default -> sb.insert(at, "qx");
            }
        }
        return sb.toString();
    }

    @Test
    void perturbHelperChangesText() {
        // Guards the arbitrary-text test against a helper that silently returns its input.
        Random rnd = new Random(1);
        int changed = 0;
        for (int i = 0; i < 50; i++) {
            String a = TokenAlignmentTest.randomText(rnd, 30);
            changed += perturb(a, rnd).equals(a) ? 0 : 1;
        }
        assertFalse(changed < 40, "only " + changed + " of 50 perturbed");
    }
}
