package org.loratransplant.align;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class TokenAlignmentTest {

    private static final double EPS = 1e-12;

    private static SpanPair span(int s0, int s1, int t0, int t1) {
        return new SpanPair(s0, s1, t0, t1, true);
    }

    private static SpanPair unmatched(int s0, int s1, int t0, int t1) {
        return new SpanPair(s0, s1, t0, t1, false);
    }

    @Test
    void normaliseRemovesWhitespaceAndSentencePieceMarker() {
        assertEquals("the", TokenAlignment.normalise(" the"));
        assertEquals("the", TokenAlignment.normalise("\u2581the"));
        assertEquals("", TokenAlignment.normalise("\n\t "));
        assertEquals("", TokenAlignment.normalise(""));
        assertEquals("ab", TokenAlignment.normalise("a\u00A0b")); // no-break space: Python isspace
        assertEquals("ab", TokenAlignment.normalise("a\r\nb"));
        assertEquals("", TokenAlignment.normalise("\u3000\u2028\u001f\u000b\u000c"));
        assertEquals("x\u200By", TokenAlignment.normalise("x\u200By")); // zero-width space is not isspace
        assertEquals("caf\u00e9\uD83D\uDE42", TokenAlignment.normalise(" caf\u00e9 \uD83D\uDE42"));
    }

    @Test
    void manyToOneAveragesThenOneToOneCopies() {
        // "▁un" "believ" "able" -> target "▁unbeliev" "able": un+believ = unbeliev (many-to-one,
        // mean (1 + 0) / 2 = 0.5), able = able (one-to-one, 1).
        Alignment a = TokenAlignment.align(List.of(" un", "believ", "able"), new double[] {1, 0, 1},
                List.of(" unbeliev", "able"));
        assertArrayEquals(new double[] {0.5, 1.0}, a.targetScores(), EPS);
        assertEquals(List.of(span(0, 2, 0, 1), span(2, 3, 1, 2)), a.spans());
        assertEquals(SpanKind.MANY_TO_ONE, a.spans().get(0).kind());
        assertEquals(SpanKind.ONE_TO_ONE, a.spans().get(1).kind());
        assertEquals(2, a.matchedSpans());
        assertEquals(0, a.unmatchedTargetTokens());
    }

    @Test
    void oneToManyCopiesToEveryTargetToken() {
        Alignment a = TokenAlignment.align(List.of(" unbelievable", "!"), new double[] {0.8, 0.1},
                List.of(" un", "believ", "able", "!"));
        assertArrayEquals(new double[] {0.8, 0.8, 0.8, 0.1}, a.targetScores(), EPS);
        assertEquals(List.of(span(0, 1, 0, 3), span(1, 2, 3, 4)), a.spans());
        assertEquals(SpanKind.ONE_TO_MANY, a.spans().get(0).kind());
    }

    @Test
    void manyToManyAveragesAndCopies() {
        // unbel+ievable = unbeliev+able; no shorter common boundary (5 vs 8 characters).
        Alignment a = TokenAlignment.align(List.of(" unbel", "ievable"), new double[] {1, 0},
                List.of(" unbeliev", "able"));
        assertArrayEquals(new double[] {0.5, 0.5}, a.targetScores(), EPS);
        assertEquals(List.of(span(0, 2, 0, 2)), a.spans());
        assertEquals(SpanKind.MANY_TO_MANY, a.spans().get(0).kind());
        Map<SpanKind, Integer> kinds = a.kindCounts();
        assertEquals(1, kinds.get(SpanKind.MANY_TO_MANY));
        assertEquals(0, kinds.get(SpanKind.UNMATCHED));
    }

    @Test
    void sentenceWithAllRules() {
        // source: The | cat | sat | on | themat ; target: The | c | at | sat | on | the | mat
        List<String> src = List.of("The", " cat", " sat", " on", " themat");
        List<String> tgt = List.of("The", " c", "at", " sat", " on", " the", " mat");
        Alignment a = TokenAlignment.align(src, new double[] {0.1, 0.2, 0.3, 0.4, 0.5}, tgt);
        assertArrayEquals(new double[] {0.1, 0.2, 0.2, 0.3, 0.4, 0.5, 0.5}, a.targetScores(), EPS);
        assertEquals(List.of(span(0, 1, 0, 1), span(1, 2, 1, 3), span(2, 3, 3, 4), span(3, 4, 4, 5),
                span(4, 5, 5, 7)), a.spans());
    }

    @Test
    void oneSidedSpecialTokenJoinsTheFollowingSpan() {
        // source: Yes | </s> | no ; target: Yes | no. The empty token joins "no": mean (0.5 + 0) / 2.
        Alignment a = TokenAlignment.align(List.of(" Yes", "", " no"), new double[] {1, 0.5, 0},
                List.of(" Yes", " no"));
        assertArrayEquals(new double[] {1, 0.25}, a.targetScores(), EPS);
        assertEquals(List.of(span(0, 1, 0, 1), span(1, 3, 1, 2)), a.spans());
        // Leading special (e.g. <s>) on one side joins the first span.
        Alignment lead = TokenAlignment.align(List.of("", " Hi", " there"), new double[] {0, 1, 0.5},
                List.of(" Hi", " there"));
        assertArrayEquals(new double[] {0.5, 0.5}, lead.targetScores(), EPS);
        assertEquals(List.of(span(0, 2, 0, 1), span(2, 3, 1, 2)), lead.spans());
    }

    @Test
    void specialTokenInsideASpanDoesNotBreakIt() {
        Alignment a = TokenAlignment.align(List.of(" un", "", "believable"), new double[] {0.3, 0.6, 0.9},
                List.of(" unbelievable"));
        assertArrayEquals(new double[] {0.6}, a.targetScores(), EPS);
        assertEquals(List.of(span(0, 3, 0, 1)), a.spans());
        // and on the target side: both target tokens of the span get the source score
        Alignment b = TokenAlignment.align(List.of(" unbelievable"), new double[] {0.7},
                List.of(" un", "", "believable"));
        assertArrayEquals(new double[] {0.7, 0.7, 0.7}, b.targetScores(), EPS);
    }

    @Test
    void specialTokensOnBothSidesPairUp() {
        // Same position on both sides: paired with each other, not mixed into the words.
        Alignment a = TokenAlignment.align(List.of(" Yes", "", " no", ""), new double[] {1, 0.5, 0, 0.9},
                List.of(" Yes", "", " no", ""));
        assertArrayEquals(new double[] {1, 0.5, 0, 0.9}, a.targetScores(), EPS);
        assertEquals(4, a.matchedSpans());
        // Runs of different length pair as one span: newline bytes "\n" "\n" vs one "\n\n" token.
        Alignment nl = TokenAlignment.align(List.of(" Hello", "\n", "\n", "World"), new double[] {1, 0, 1, 0},
                List.of("Hello", "\n\n", "World"));
        assertArrayEquals(new double[] {1, 0.5, 0}, nl.targetScores(), EPS);
        assertEquals(List.of(span(0, 1, 0, 1), span(1, 3, 1, 2), span(3, 4, 2, 3)), nl.spans());
    }

    @Test
    void trailingOneSidedSpecialJoinsThePrecedingSpan() {
        // source eos without a target counterpart: averaged into the last span.
        Alignment a = TokenAlignment.align(List.of(" Hi", ""), new double[] {1, 0}, List.of(" Hi"));
        assertArrayEquals(new double[] {0.5}, a.targetScores(), EPS);
        assertEquals(List.of(span(0, 2, 0, 1)), a.spans());
        // target eot without a source counterpart: gets the last span's score instead of 0.
        Alignment b = TokenAlignment.align(List.of(" Hi"), new double[] {0.4}, List.of(" Hi", "\n", ""));
        assertArrayEquals(new double[] {0.4, 0.4, 0.4}, b.targetScores(), EPS);
        assertEquals(List.of(span(0, 1, 0, 3)), b.spans());
    }

    @Test
    void whitespaceOnlyTokensAreEmpty() {
        Alignment a = TokenAlignment.align(List.of("a", " ", "b", "\t", "\r\n", "c"), new double[] {1, 2, 3, 4, 5, 6},
                List.of("a", " b", " c"));
        // " " joins "b" (mean (2+3)/2), "\t" "\r\n" join "c" (mean (4+5+6)/3).
        assertArrayEquals(new double[] {1, 2.5, 5}, a.targetScores(), EPS);
    }

    @Test
    void deletedWordReSynchronises() {
        List<String> src = List.of(" the", " big", " cat", " sat", " on", " the", " mat");
        List<String> tgt = List.of(" the", " cat", " sat", " on", " the", " mat");
        Alignment a = TokenAlignment.align(src, new double[] {1, 2, 3, 4, 5, 6, 7}, tgt);
        assertArrayEquals(new double[] {1, 3, 4, 5, 6, 7}, a.targetScores(), EPS);
        assertEquals(unmatched(1, 2, 1, 1), a.spans().get(1)); // "big" has no target counterpart
        assertEquals(6, a.matchedSpans());
        assertEquals(0, a.unmatchedTargetTokens());
    }

    @Test
    void insertedAndSubstitutedWordsScoreZeroAndReSynchronise() {
        List<String> src = List.of(" The", " cat", " sat", " on", " the", " mat");
        List<String> ins = List.of(" The", " very", " cat", " sat", " on", " the", " mat");
        Alignment a = TokenAlignment.align(src, new double[] {1, 2, 3, 4, 5, 6}, ins);
        assertArrayEquals(new double[] {1, 0, 2, 3, 4, 5, 6}, a.targetScores(), EPS);
        assertEquals(unmatched(1, 1, 1, 2), a.spans().get(1));
        assertEquals(1, a.unmatchedTargetTokens());

        List<String> sub = List.of(" The", " dog", " sat", " on", " the", " m", "at");
        Alignment b = TokenAlignment.align(src, new double[] {1, 2, 3, 4, 5, 6}, sub);
        assertArrayEquals(new double[] {1, 0, 3, 4, 5, 6, 6}, b.targetScores(), EPS);
        assertEquals(unmatched(1, 2, 1, 2), b.spans().get(1));
        assertEquals(SpanKind.ONE_TO_MANY, b.spans().get(b.spans().size() - 1).kind());
    }

    @Test
    void divergenceInsideAWordReSynchronisesAtTheNextSharedBoundary() {
        // internation+alization vs international+isation differ at character 14 (z vs s).
        List<String> src = List.of(" internation", "alization", " is", " long");
        List<String> tgt = List.of(" international", "isation", " is", " long");
        Alignment a = TokenAlignment.align(src, new double[] {1, 1, 0.5, 0.25}, tgt);
        assertEquals(List.of(unmatched(0, 2, 0, 2), span(2, 3, 2, 3), span(3, 4, 3, 4)), a.spans());
        assertArrayEquals(new double[] {0, 0, 0.5, 0.25}, a.targetScores(), EPS);
        assertEquals(2, a.unmatchedTargetTokens());
    }

    @Test
    void resyncLookaheadIgnoresShortCoincidences() {
        // After "x" vs "y" differ, "ab" occurs on both sides but is followed by differing text
        // (qq vs rr ss); with 8 characters of look-ahead it stays inside the unmatched region.
        List<String> src = List.of(" x", " ab", " qq", " the", " end", " of", " it");
        List<String> tgt = List.of(" y", " ab", " rr", " ss", " the", " end", " of", " it");
        double[] scores = {1, 2, 3, 4, 5, 6, 7};
        Alignment strict = TokenAlignment.align(src, scores, tgt);
        assertEquals(unmatched(0, 3, 0, 4), strict.spans().get(0));
        assertArrayEquals(new double[] {0, 0, 0, 0, 4, 5, 6, 7}, strict.targetScores(), EPS);
        // With one character of look-ahead "ab" is taken as a re-synchronisation point.
        Alignment loose = TokenAlignment.align(src, scores, tgt, 1);
        assertEquals(List.of(unmatched(0, 1, 0, 1), span(1, 2, 1, 2), unmatched(2, 3, 2, 4)),
                loose.spans().subList(0, 3));
        assertArrayEquals(new double[] {0, 2, 0, 0, 4, 5, 6, 7}, loose.targetScores(), EPS);
    }

    @Test
    void byteSplitCharacterIsALocalMismatch() {
        // A byte-level tokenizer may split "é" over two tokens that each decode to U+FFFD. The
        // decoded texts then differ around it: that word is unmatched and the walk re-synchronises.
        List<String> src = List.of(" caf", "\uFFFD", "\uFFFD", " is", " open", " today");
        List<String> tgt = List.of(" caf\u00e9", " is", " open", " today");
        Alignment a = TokenAlignment.align(src, new double[] {1, 1, 1, 0.2, 0.3, 0.4}, tgt);
        assertEquals(unmatched(0, 3, 0, 1), a.spans().get(0));
        assertArrayEquals(new double[] {0, 0.2, 0.3, 0.4}, a.targetScores(), EPS);
    }

    @Test
    void tailsOnlyOneSideHas() {
        Alignment tgtTail = TokenAlignment.align(List.of(" yes"), new double[] {0.9},
                List.of(" yes", ".", " Because"));
        assertArrayEquals(new double[] {0.9, 0, 0}, tgtTail.targetScores(), EPS);
        assertEquals(List.of(span(0, 1, 0, 1), unmatched(1, 1, 1, 3)), tgtTail.spans());
        assertEquals(2, tgtTail.unmatchedTargetTokens());

        Alignment srcTail = TokenAlignment.align(List.of(" yes", " because"), new double[] {0.9, 0.1},
                List.of(" yes"));
        assertArrayEquals(new double[] {0.9}, srcTail.targetScores(), EPS);
        assertEquals(List.of(span(0, 1, 0, 1), unmatched(1, 2, 1, 1)), srcTail.spans());
    }

    @Test
    void totalMismatchGivesAllZeros() {
        Alignment a = TokenAlignment.align(List.of(" hello", " world"), new double[] {1, 1},
                List.of(" good", "bye", " moon"));
        assertArrayEquals(new double[] {0, 0, 0}, a.targetScores(), 0.0);
        assertEquals(List.of(unmatched(0, 2, 0, 3)), a.spans());
        assertEquals(0, a.matchedSpans());
        assertEquals(3, a.unmatchedTargetTokens());
        assertEquals(1, a.kindCounts().get(SpanKind.UNMATCHED));
    }

    @Test
    void emptyInputs() {
        Alignment none = TokenAlignment.align(List.of(), new double[0], List.of());
        assertEquals(List.of(), none.spans());
        assertEquals(0, none.targetScores().length);
        Alignment noSource = TokenAlignment.align(List.of(), new double[0], List.of(" a", ""));
        assertArrayEquals(new double[] {0, 0}, noSource.targetScores(), 0.0);
        assertEquals(List.of(unmatched(0, 0, 0, 2)), noSource.spans());
        Alignment noTarget = TokenAlignment.align(List.of(" a"), new double[] {1}, List.of());
        assertEquals(List.of(unmatched(0, 1, 0, 0)), noTarget.spans());
        Alignment onlySpecials = TokenAlignment.align(List.of("", ""), new double[] {1, 3}, List.of(""));
        assertArrayEquals(new double[] {2}, onlySpecials.targetScores(), EPS);
        assertEquals(List.of(span(0, 2, 0, 1)), onlySpecials.spans());
    }

    @Test
    void identicalTokenizationsAreTheIdentity() {
        java.util.Random rnd = new java.util.Random(17);
        for (int trial = 0; trial < 200; trial++) {
            List<String> tokens = randomSplit(randomText(rnd, 40), rnd, true);
            double[] scores = rnd.doubles(tokens.size()).toArray();
            Alignment a = TokenAlignment.align(tokens, scores, tokens);
            assertArrayEquals(scores, a.targetScores(), 0.0, tokens.toString());
            for (SpanPair s : a.spans()) {
                assertEquals(SpanKind.ONE_TO_ONE, s.kind(), tokens + " " + s);
            }
        }
    }

    @Test
    void badInputIsRejected() {
        IllegalArgumentException count = assertThrows(IllegalArgumentException.class,
                () -> TokenAlignment.align(List.of("a", "b"), new double[] {1}, List.of("ab")));
        assertTrue(count.getMessage().contains("1") && count.getMessage().contains("2"), count.getMessage());
        IllegalArgumentException nan = assertThrows(IllegalArgumentException.class,
                () -> TokenAlignment.align(List.of("a", "b"), new double[] {1, Double.NaN}, List.of("ab")));
        assertTrue(nan.getMessage().contains("position 1"), nan.getMessage());
        List<String> withNull = new ArrayList<>(List.of("a"));
        withNull.add(null);
        NullPointerException npe = assertThrows(NullPointerException.class,
                () -> TokenAlignment.align(List.of("a"), new double[] {1}, withNull));
        assertTrue(npe.getMessage().contains("target token at position 1"), npe.getMessage());
        assertThrows(IllegalArgumentException.class,
                () -> TokenAlignment.align(List.of("a"), new double[] {1}, List.of("a"), 0));
        assertThrows(IllegalArgumentException.class, () -> new SpanPair(2, 1, 0, 0, false));
        assertThrows(IllegalArgumentException.class, () -> new SpanPair(0, 0, 0, 1, true));
    }

    @Test
    void longInputsStayFast() {
        java.util.Random rnd = new java.util.Random(99);
        String text = randomText(rnd, 6000);
        List<String> x = randomSplit(text, rnd, true);
        List<String> y = randomSplit(text, rnd, true);
        List<String> other = randomSplit(randomText(rnd, 6000), rnd, false);
        assertTimeoutPreemptively(Duration.ofSeconds(20), () -> {
            Alignment same = TokenAlignment.align(x, new double[x.size()], y);
            assertEquals(0, same.unmatchedTargetTokens());
            Alignment diff = TokenAlignment.align(x, new double[x.size()], other);
            assertFalse(diff.unmatchedTargetTokens() == 0);
        });
    }

    // ---- helpers shared with the property tests ----

    static String randomText(java.util.Random rnd, int length) {
        String alphabet = "abcdefgh  ,.\n";
        StringBuilder sb = new StringBuilder();
        while (sb.length() < length) {
            int r = rnd.nextInt(100);
            if (r == 0) {
                sb.append("\uD83D\uDE42"); // a surrogate pair, never split below
            } else if (r == 1) {
                sb.append('\u00e9');
            } else {
                sb.append(alphabet.charAt(rnd.nextInt(alphabet.length())));
            }
        }
        return sb.toString();
    }

    /**
     * Splits text into tokens of 1-5 code points at random; with {@code specials}, also inserts
     * tokens that decode to "" (special tokens) at random places.
     */
    static List<String> randomSplit(String text, java.util.Random rnd, boolean specials) {
        List<String> out = new ArrayList<>();
        int i = 0;
        while (i < text.length()) {
            if (specials && rnd.nextInt(12) == 0) {
                out.add("");
            }
            int end = i;
            int cps = 1 + rnd.nextInt(5);
            for (int k = 0; k < cps && end < text.length(); k++) {
                end += Character.charCount(text.codePointAt(end));
            }
            out.add(text.substring(i, end));
            i = end;
        }
        if (specials && rnd.nextInt(3) == 0) {
            out.add("");
        }
        return out;
    }
}
