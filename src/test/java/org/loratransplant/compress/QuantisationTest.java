package org.loratransplant.compress;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.apache.commons.math3.distribution.NormalDistribution;
import org.junit.jupiter.api.Test;

/** NF4, its double quantisation, int8 and pruning against formulas computed here. */
class QuantisationTest {
  /** bitsandbytes' functional.py {@code get_4bit_type("nf4")}, typed from the source. */
  private static final double[] PUBLISHED_NF4 = {-1.0, -0.6961928009986877, -0.5250730514526367,
      -0.39491748809814453, -0.28444138169288635, -0.18477343022823334, -0.09105003625154495,
      0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
      0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0};

  @Test
  void nf4LevelsAreThePublishedConstantsAndQloraNormalQuantiles() {
    for (int i = 0; i < 16; i++) {
      assertEquals((float) PUBLISHED_NF4[i], Nf4.LEVELS[i], 0f, "level " + i);
    }
    // QLoRA / bitsandbytes create_normal_map(offset=0.9677083): 8 positive quantiles of N(0,1)
    // at linspace(offset, 0.5, 9)[:-1], 7 negative at linspace(offset, 0.5, 8)[:-1], a zero,
    // all divided by the largest.
    NormalDistribution n = new NormalDistribution(0, 1);
    double offset = 0.9677083;
    List<Double> v = new ArrayList<>();
    for (int i = 0; i < 8; i++) {
      v.add(n.inverseCumulativeProbability(offset + (0.5 - offset) * i / 8));
    }
    for (int i = 0; i < 7; i++) {
      v.add(-n.inverseCumulativeProbability(offset + (0.5 - offset) * i / 7));
    }
    v.add(0.0);
    double max = v.stream().mapToDouble(Double::doubleValue).max().orElseThrow();
    double[] want = v.stream().mapToDouble(x -> x / max).sorted().toArray();
    for (int i = 0; i < 16; i++) {
      assertEquals(want[i], Nf4.LEVELS[i], 2e-6, "level " + i);
    }
  }

  @Test
  void dynamicCodeIsBitsandbytesSigned8BitMap() {
    float[] c = DynamicCode.CODE;
    assertEquals(256, c.length);
    for (int i = 1; i < 256; i++) {
      assertTrue(c[i] > c[i - 1], "strictly ascending at " + i);
    }
    assertEquals(1f, c[255], 0f);
    assertEquals(0f, c[127], 0f, "127 negative values, then 0");
    // exponent 0 (10^-6): one fraction item, the midpoint of [0.1, 1] = 0.55
    assertEquals(5.5e-7, c[128], 1e-12);
    assertEquals(-5.5e-7, c[126], 1e-12);
    // exponent 6 (10^0): 64 items over [0.1, 1]; the largest midpoint is (1 - 0.9/128)
    assertEquals(-(1 - 0.9 / 128), c[0], 1e-7);
    assertEquals(1 - 0.9 / 128, c[254], 1e-7);
  }

  @Test
  void blockOfExactLevelsRoundTripsExactlyAndPacksHighNibbleFirst() {
    float absmax = 3.5f;
    float[] w = new float[64];
    for (int i = 0; i < 64; i++) {
      w[i] = Nf4.LEVELS[(i * 7) % 16] * absmax; // hits every level, with -1 and 1
    }
    Nf4.Quantized q = Nf4.quantize(w);
    // One block: offset = its absmax, the centred constant is 0 and dequantises to 0 exactly.
    assertEquals(absmax, q.offset(), 0f);
    assertEquals(absmax, q.blockScales()[0], 0f);
    assertArrayEquals(w, q.dequantize(), 0f);
    assertEquals(32, q.packed().length);
    for (int i = 0; i < 32; i++) {
      int hi = (2 * i * 7) % 16;
      int lo = ((2 * i + 1) * 7) % 16;
      assertEquals((hi << 4) | lo, q.packed()[i] & 0xFF, "byte " + i);
    }
  }

  @Test
  void roundTripMatchesTheReferenceFormulaOnTwoBlocks() {
    Random r = new Random(5);
    float[] w = new float[128];
    for (int i = 0; i < 128; i++) {
      w[i] = (float) (r.nextGaussian() * (i < 64 ? 2.0 : 0.5));
    }
    // Reference: absmax per block; double quantisation of absmax - mean in one 256-block over
    // the dynamic code (nearest by brute force); w ~ level(nearest by brute force) * scale.
    double a0 = 0;
    double a1 = 0;
    for (int i = 0; i < 64; i++) {
      a0 = Math.max(a0, Math.abs(w[i]));
      a1 = Math.max(a1, Math.abs(w[64 + i]));
    }
    float offset = (float) ((a0 + a1) / 2);
    float[] centred = {(float) a0 - offset, (float) a1 - offset};
    float a2 = Math.max(Math.abs(centred[0]), Math.abs(centred[1]));
    float[] scale = new float[2];
    for (int b = 0; b < 2; b++) {
      scale[b] = DynamicCode.CODE[argmin(DynamicCode.CODE, centred[b] / a2)] * a2 + offset;
    }
    float[] want = new float[128];
    for (int i = 0; i < 128; i++) {
      float absmax = (float) (i < 64 ? a0 : a1);
      want[i] = Nf4.LEVELS[argmin(Nf4.LEVELS, w[i] / absmax)] * scale[i / 64];
    }
    Nf4.Quantized q = Nf4.quantize(w);
    assertEquals(offset, q.offset(), 0f);
    assertArrayEquals(want, q.dequantize(), 0f);
    // the first block's constant sits at +1 of the code exactly, the second near -1
    assertEquals((float) a0, scale[0], 1e-6f);
  }

  private static int argmin(float[] code, float x) {
    int best = 0;
    for (int i = 1; i < code.length; i++) {
      if (Math.abs(x - code[i]) < Math.abs(x - code[best])) {
        best = i;
      }
    }
    return best;
  }

  @Test
  void doubleQuantisationErrorIsWithinHalfTheCodesGapTimesTheSecondLevelScale() {
    Random r = new Random(11);
    int blocks = 600; // three second-level blocks, the last one short
    float[] w = new float[blocks * 64];
    double[] absmax = new double[blocks];
    for (int b = 0; b < blocks; b++) {
      double s = Math.exp(r.nextGaussian()); // constants spread over two orders of magnitude
      for (int i = 0; i < 64; i++) {
        w[b * 64 + i] = (float) (r.nextGaussian() * s);
        absmax[b] = Math.max(absmax[b], Math.abs(w[b * 64 + i]));
      }
    }
    double halfGap = 0;
    for (int i = 1; i < 256; i++) {
      halfGap = Math.max(halfGap, (DynamicCode.CODE[i] - DynamicCode.CODE[i - 1]) / 2.0);
    }
    assertEquals(0.9 / 128, halfGap, 1e-6, "widest gap of the dynamic code is in [0.1, 1]");
    Nf4.Quantized q = Nf4.quantize(w);
    assertEquals(3, q.absmax2().length);
    float[] scales = q.blockScales();
    double mean = Arrays.stream(absmax).average().orElseThrow();
    assertEquals(mean, q.offset(), 1e-5);
    double worst = 0;
    for (int b = 0; b < blocks; b++) {
      double second = 0;
      for (int j = (b / 256) * 256; j < Math.min(blocks, (b / 256 + 1) * 256); j++) {
        second = Math.max(second, Math.abs(absmax[j] - q.offset()));
      }
      double err = Math.abs(scales[b] - absmax[b]);
      assertTrue(err <= halfGap * second + 1e-6, "block " + b + ": " + err);
      worst = Math.max(worst, err / absmax[b]);
    }
    assertTrue(worst > 0, "double quantisation is lossy");
    // Each value: w / absmax is within NF4's widest half gap (-1 to -0.6962) of its level, and the
    // level (|level| <= 1) is multiplied by the double-quantised constant instead of absmax.
    float[] deq = q.dequantize();
    double nf4HalfGap = 0;
    for (int i = 1; i < 16; i++) {
      nf4HalfGap = Math.max(nf4HalfGap, (Nf4.LEVELS[i] - Nf4.LEVELS[i - 1]) / 2.0);
    }
    assertEquals((1 - 0.6961928) / 2, nf4HalfGap, 1e-6);
    for (int i = 0; i < w.length; i++) {
      double bound = nf4HalfGap * absmax[i / 64] + Math.abs(scales[i / 64] - absmax[i / 64])
          + 1e-6;
      assertTrue(Math.abs(w[i] - deq[i]) <= bound, "value " + i);
    }
  }

  @Test
  void int8ErrorIsAtMostHalfAStepPerChannel() {
    Random r = new Random(3);
    int rows = 17;
    int cols = 40;
    float[] w = new float[rows * cols];
    for (int i = 0; i < w.length; i++) {
      w[i] = (float) (r.nextGaussian() * (1 + i / cols));
    }
    Int8.Quantized q = Int8.quantize(w, rows, cols);
    float[] deq = q.dequantize();
    for (int row = 0; row < rows; row++) {
      double absmax = 0;
      int maxCode = 0;
      for (int c = 0; c < cols; c++) {
        absmax = Math.max(absmax, Math.abs(w[row * cols + c]));
        maxCode = Math.max(maxCode, Math.abs(q.codes()[row * cols + c]));
      }
      assertEquals(127, maxCode, "row " + row + "'s absmax maps to +-127");
      assertEquals(absmax / 127, q.scales()[row], 1e-6 * absmax);
      for (int c = 0; c < cols; c++) {
        double err = Math.abs(w[row * cols + c] - deq[row * cols + c]);
        assertTrue(err <= absmax / 127 / 2 * (1 + 1e-5), "row " + row + " col " + c + ": " + err);
      }
    }
  }

  @Test
  void unstructuredPruningHitsTheSparsityAndKeepsTheLargestMagnitudes() {
    Random r = new Random(9);
    float[] w = new float[64 * 172];
    for (int i = 0; i < w.length; i++) {
      w[i] = (float) r.nextGaussian();
    }
    float[] p = Pruning.unstructured(w, 0.3);
    int k = (int) Math.round(0.3 * w.length);
    double maxPruned = 0;
    double minKept = Double.MAX_VALUE;
    int zeros = 0;
    for (int i = 0; i < w.length; i++) {
      if (p[i] == 0f) {
        zeros++;
        maxPruned = Math.max(maxPruned, Math.abs(w[i]));
      } else {
        assertEquals(w[i], p[i], 0f, "kept entries are unchanged");
        minKept = Math.min(minKept, Math.abs(w[i]));
      }
    }
    assertEquals(k, zeros);
    assertTrue(maxPruned <= minKept, maxPruned + " pruned vs " + minKept + " kept");
  }

  @Test
  void structuredPruningZeroesTheRowsOfSmallestNorm() {
    Random r = new Random(13);
    int rows = 20;
    int cols = 8;
    float[] w = new float[rows * cols];
    for (int i = 0; i < w.length; i++) {
      w[i] = (float) (r.nextGaussian() * (1 + (i / cols) % 7));
    }
    float[] p = Pruning.structured(w, rows, cols, 0.25);
    double[] norm = new double[rows];
    List<Integer> zeroed = new ArrayList<>();
    for (int row = 0; row < rows; row++) {
      boolean allZero = true;
      for (int c = 0; c < cols; c++) {
        norm[row] += w[row * cols + c] * w[row * cols + c];
        allZero &= p[row * cols + c] == 0f;
        if (p[row * cols + c] != 0f) {
          assertEquals(w[row * cols + c], p[row * cols + c], 0f);
        }
      }
      if (allZero) {
        zeroed.add(row);
      }
    }
    assertEquals(5, zeroed.size(), "round(0.25 * 20) rows");
    double[] sorted = norm.clone();
    Arrays.sort(sorted);
    for (int row : zeroed) {
      assertTrue(norm[row] <= sorted[4], "row " + row + " is among the 5 smallest");
    }
  }
}
