package org.loratransplant.report;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.math.MathContext;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

class PairedTestsTest {

  /** b items right only for the method, c only for the baseline, then both, then neither. */
  private static double[][] vectors(int b, int c, int both, int neither) {
    int n = b + c + both + neither;
    double[] m = new double[n];
    double[] s = new double[n];
    int i = 0;
    for (int k = 0; k < b; k++, i++) {
      m[i] = 1;
    }
    for (int k = 0; k < c; k++, i++) {
      s[i] = 1;
    }
    for (int k = 0; k < both; k++, i++) {
      m[i] = 1;
      s[i] = 1;
    }
    return new double[][] {m, s};
  }

  @Test
  void mcnemarMatchesTheHandComputedBinomialTail() {
    double[][] v = vectors(10, 2, 5, 3);
    PairedTests.McNemar t = PairedTests.mcnemar(v[0], v[1]);
    assertEquals(10, t.b());
    assertEquals(2, t.c());
    assertEquals(20, t.n());
    // 2 * (C(12,0) + C(12,1) + C(12,2)) / 2^12 = 2 * (1 + 12 + 66) / 4096 = 0.0386
    assertEquals(2.0 * (1 + 12 + 66) / 4096, t.p(), 1e-15);
    assertEquals(0.0386, t.p(), 5e-5);
    assertEquals(8.0 / 20, t.difference(), 1e-15);
    // swapping the two sides swaps b and c and keeps p
    PairedTests.McNemar back = PairedTests.mcnemar(v[1], v[0]);
    assertEquals(2, back.b());
    assertEquals(t.p(), back.p(), 0);
    // b = 5, c = 0: 2 / 32
    assertEquals(2.0 / 32, PairedTests.mcnemarP(5, 0), 1e-15);
  }

  @Test
  void mcnemarIsOneWithoutEvidence() {
    assertEquals(1.0, PairedTests.mcnemarP(0, 0));
    assertEquals(1.0, PairedTests.mcnemarP(4, 4));
    // b = 3, c = 4: 2 * P[X <= 3 | 7] = 2 * 64/128 = 1
    assertEquals(1.0, PairedTests.mcnemarP(3, 4), 1e-15);
  }

  @Test
  void mcnemarOnLargeCountsMatchesExactRationalArithmetic() {
    int b = 560;
    int c = 440;
    int m = b + c;
    BigInteger sum = BigInteger.ZERO;
    BigInteger choose = BigInteger.ONE;
    for (int i = 0; i <= c; i++) {
      if (i > 0) {
        choose = choose.multiply(BigInteger.valueOf(m - i + 1)).divide(BigInteger.valueOf(i));
      }
      sum = sum.add(choose);
    }
    double exact = new BigDecimal(sum.shiftLeft(1))
        .divide(new BigDecimal(BigInteger.ONE.shiftLeft(m)), MathContext.DECIMAL128)
        .doubleValue();
    assertTrue(exact > 1e-5 && exact < 1e-3, "oracle sanity: " + exact);
    assertEquals(exact, PairedTests.mcnemarP(b, c), exact * 1e-9);
  }

  @Test
  void mcnemarRefusesScoresThatAreNotZeroOrOne() {
    assertThrows(IllegalArgumentException.class,
        () -> PairedTests.mcnemar(new double[] {0.5, 1}, new double[] {1, 1}));
    assertThrows(IllegalArgumentException.class,
        () -> PairedTests.mcnemar(new double[] {1}, new double[] {1, 1}));
  }

  @Test
  void bootstrapOfAConstantDifferenceIsThatDifference() {
    double[] base = {0.1, 0.5, 0.9, 0.3};
    double[] m = {0.4, 0.8, 1.2, 0.6};
    PairedTests.Bootstrap bs = PairedTests.bootstrap(m, base, 999, 7);
    assertEquals(0.3, bs.meanDiff(), 1e-12);
    assertEquals(0.3, bs.lo(), 1e-12);
    assertEquals(0.3, bs.hi(), 1e-12);
    // no resample reaches 0: p = 2 * (0 + 1) / (999 + 1)
    assertEquals(2.0 / 1000, bs.p(), 1e-15);
  }

  @Test
  void bootstrapIntervalCoversTheTrueDifferenceAndIsReproducible() {
    Random r = new Random(11);
    int n = 400;
    double[] base = new double[n];
    double[] m = new double[n];
    for (int i = 0; i < n; i++) {
      base[i] = r.nextDouble();
      // true difference 0.05, noise +-0.3 in balanced pairs so the sample mean is exactly 0.05
      m[i] = base[i] + 0.05 + (i % 2 == 0 ? 0.3 : -0.3);
    }
    PairedTests.Bootstrap a = PairedTests.bootstrap(m, base, 2000, 42);
    assertEquals(0.05, a.meanDiff(), 1e-12);
    assertTrue(a.lo() < 0.05 && 0.05 < a.hi(), a.toString());
    assertTrue(a.lo() > 0, "the difference is clearly positive: " + a);
    assertTrue(a.p() < 0.01, a.toString());
    // half-width near the normal approximation 1.96 * sd / sqrt(n), sd = 0.3
    double half = 1.96 * 0.3 / Math.sqrt(n);
    assertEquals(half, (a.hi() - a.lo()) / 2, 0.15 * half);
    assertEquals(a, PairedTests.bootstrap(m, base, 2000, 42));
    assertNotEquals(a.lo(), PairedTests.bootstrap(m, base, 2000, 43).lo());
  }

  @Test
  void bootstrapFindsNothingInSymmetricNoise() {
    double[] base = new double[200];
    double[] m = new double[200];
    for (int i = 0; i < 200; i++) {
      m[i] = i % 2;
      base[i] = 1 - i % 2;
    }
    PairedTests.Bootstrap a = PairedTests.bootstrap(m, base, 1000, 1);
    assertEquals(0, a.meanDiff(), 1e-15);
    assertTrue(a.lo() < 0 && a.hi() > 0, a.toString());
    assertTrue(a.p() > 0.5, a.toString());
  }

  @Test
  void pairingReusesTheSingleVanillaRunForEverySeed() {
    List<ItemScores> items = List.of(
        new ItemScores("t", "tgt", "vanilla", 0, "exact_match", new double[] {0, 1, 0}),
        new ItemScores("t", "tgt", "titok", 2, "exact_match", new double[] {1, 1, 0}),
        new ItemScores("t", "tgt", "titok", 1, "exact_match", new double[] {1, 0, 1}),
        new ItemScores("t", "other", "titok", 1, "exact_match", new double[] {0, 0, 0}));
    PairedTests.Paired p = PairedTests.pair(items, "t", "tgt", "exact_match", "titok",
        "vanilla");
    assertEquals(List.of(1, 2), p.seeds());
    assertArrayEquals(new double[] {1, 0, 1, 1, 1, 0}, p.method());
    assertArrayEquals(new double[] {0, 1, 0, 0, 1, 0}, p.baseline());
  }

  @Test
  void pairingTwoSeededMethodsMatchesSeeds() {
    List<ItemScores> items = List.of(
        new ItemScores("t", "tgt", "kd", 1, "rouge1", new double[] {0.1, 0.2}),
        new ItemScores("t", "tgt", "kd", 2, "rouge1", new double[] {0.3, 0.4}),
        new ItemScores("t", "tgt", "kd", 3, "rouge1", new double[] {0.9, 0.9}),
        new ItemScores("t", "tgt", "titok", 2, "rouge1", new double[] {0.5, 0.6}),
        new ItemScores("t", "tgt", "titok", 1, "rouge1", new double[] {0.7, 0.8}));
    PairedTests.Paired p = PairedTests.pair(items, "t", "tgt", "rouge1", "titok", "kd");
    assertEquals(List.of(1, 2), p.seeds());
    assertArrayEquals(new double[] {0.7, 0.8, 0.5, 0.6}, p.method());
    assertArrayEquals(new double[] {0.1, 0.2, 0.3, 0.4}, p.baseline());
  }

  @Test
  void pairingRefusesRunsOnDifferentItems() {
    List<ItemScores> items = List.of(
        new ItemScores("t", "tgt", "vanilla", 0, "exact_match", new double[] {0, 1, 0}),
        new ItemScores("t", "tgt", "titok", 1, "exact_match", new double[] {1, 1}));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> PairedTests.pair(items, "t", "tgt", "exact_match", "titok", "vanilla"));
    assertTrue(e.getMessage().contains("item count"), e.getMessage());
    assertThrows(IllegalArgumentException.class,
        () -> PairedTests.pair(items, "t", "tgt", "exact_match", "kd", "vanilla"));
  }
}
