package org.loratransplant.safetensors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.loratransplant.safetensors.Fixtures.assertBitsEqual;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The 16-bit float conversions. Hard-coded values come from NumPy's float16 (an implementation
 * we did not write); the exhaustive checks compare against a plain formula and the definition
 * of round-to-nearest-even.
 */
class HalfFloatsTest {

  @ParameterizedTest(name = "half {0} -> float bits {1}")
  @CsvSource({
    "0x0000, 0x00000000", // +0
    "0x8000, 0x80000000", // -0 keeps its sign
    "0x0001, 0x33800000", // smallest subnormal 2^-24
    "0x8001, 0xb3800000",
    "0x03ff, 0x387fc000", // largest subnormal
    "0x0400, 0x38800000", // smallest normal 2^-14
    "0x3c00, 0x3f800000", // 1
    "0xc000, 0xc0000000", // -2
    "0x3555, 0x3eaaa000", // 0.333251953125
    "0x2e66, 0x3dccc000", // 0.0999755859375
    "0x7bff, 0x477fe000", // max 65504
    "0x7c00, 0x7f800000", // +inf
    "0xfc00, 0xff800000", // -inf
  })
  void halfToFloatEdgeCases(String half, String floatBits) {
    float expected = Float.intBitsToFloat(Integer.parseUnsignedInt(floatBits.substring(2), 16));
    short h = (short) Integer.parseInt(half.substring(2), 16);
    assertBitsEqual(expected, HalfFloats.halfToFloat(h), half);
  }

  @Test
  void halfNaNsStayNaN() {
    assertTrue(Float.isNaN(HalfFloats.halfToFloat((short) 0x7e00)));
    assertTrue(Float.isNaN(HalfFloats.halfToFloat((short) 0xfe00)));
    assertTrue(Float.isNaN(HalfFloats.halfToFloat((short) 0x7c01))); // signalling, tiny payload
    assertEquals(65504f, HalfFloats.halfToFloat((short) 0x7bff));
    assertEquals(0x1p-24f, HalfFloats.halfToFloat((short) 0x0001));
  }

  @ParameterizedTest(name = "float {0} -> half {1}")
  @CsvSource({
    "0.1, 0x2e66",
    "-0.1, 0xae66",
    "0.33333334, 0x3555",
    "3.1415927, 0x4248",
    "65504, 0x7bff",
    "65519.99, 0x7bff", // just below the midpoint to infinity
    "65520, 0x7c00", // the midpoint: ties to even, i.e. infinity
    "1e-8, 0x0000", // below half the smallest subnormal
    "2.9802322E-8, 0x0000", // 2^-25, exactly half the smallest subnormal: ties to even 0
    "2.9802326E-8, 0x0001", // one float ulp above it
    "8.940697E-8, 0x0002", // 3 * 2^-25: tie between 1 and 2 units -> even 2
    "5.9604645E-8, 0x0001",
    "6.1E-5, 0x03ff", // rounds into the largest subnormal
    "-0.0, 0x8000",
    "Infinity, 0x7c00",
    "-Infinity, 0xfc00",
  })
  void floatToHalfMatchesNumpy(float value, String half) {
    short expected = (short) Integer.parseInt(half.substring(2), 16);
    assertEquals(expected, HalfFloats.floatToHalf(value), "float " + value);
  }

  @Test
  void floatToHalfKeepsNaN() {
    assertTrue(Float.isNaN(HalfFloats.halfToFloat(HalfFloats.floatToHalf(Float.NaN))));
    // Payload only in the low bits that narrowing drops: must not become infinity.
    float lowPayloadNaN = Float.intBitsToFloat(0x7f800001);
    assertTrue(Float.isNaN(HalfFloats.halfToFloat(HalfFloats.floatToHalf(lowPayloadNaN))));
  }

  /** Every half value against the textbook formula sign * 2^(e-15) * (1 + m/1024). */
  @Test
  void everyHalfMatchesFormulaAndRoundTrips() {
    for (int bits = 0; bits < 0x10000; bits++) {
      short h = (short) bits;
      int exp = (bits >> 10) & 0x1f;
      int mant = bits & 0x3ff;
      double sign = (bits & 0x8000) != 0 ? -1 : 1;
      float actual = HalfFloats.halfToFloat(h);
      if (exp == 0x1f) {
        assertTrue(mant == 0 ? Float.isInfinite(actual) : Float.isNaN(actual), "bits " + bits);
        continue;
      }
      double expected =
          exp == 0
              ? sign * Math.scalb((double) mant, -24)
              : sign * Math.scalb(1 + mant / 1024.0, exp - 15);
      assertBitsEqual((float) expected, actual, "half bits " + Integer.toHexString(bits));
      assertEquals(h, HalfFloats.floatToHalf(actual), "round trip of " + Integer.toHexString(bits));
    }
  }

  /**
   * Round to nearest even, checked at every rounding boundary: halfway between two adjacent
   * halves goes to the one with an even mantissa, and one float ulp either side goes to the
   * nearer one. Covers subnormals, the subnormal/normal seam and overflow to infinity.
   */
  @Test
  void floatToHalfRoundsToNearestEvenAtEveryMidpoint() {
    for (int lo = 0; lo < 0x7c00; lo++) {
      float a = HalfFloats.halfToFloat((short) lo);
      // Above 65504 the next step (65536) is not a half: it rounds to infinity (0x7c00).
      float b = lo == 0x7bff ? 65536f : HalfFloats.halfToFloat((short) (lo + 1));
      float mid = (a + b) / 2; // exact: at most 12 significant bits
      short even = (short) ((lo & 1) == 0 ? lo : lo + 1);
      assertEquals(even, HalfFloats.floatToHalf(mid), "midpoint above " + Integer.toHexString(lo));
      assertEquals((short) lo, HalfFloats.floatToHalf(Math.nextDown(mid)));
      assertEquals((short) (lo + 1), HalfFloats.floatToHalf(Math.nextUp(mid)));
      assertEquals((short) (lo | 0x8000), HalfFloats.floatToHalf(-Math.nextDown(mid)));
    }
  }

  @ParameterizedTest(name = "bf16 {0} -> float bits {1}")
  @CsvSource({
    "0x0000, 0x00000000",
    "0x8000, 0x80000000",
    "0x0001, 0x00010000", // subnormal 2^-133
    "0x3f80, 0x3f800000",
    "0xc040, 0xc0400000", // -3
    "0x7f7f, 0x7f7f0000", // max finite
    "0x7f80, 0x7f800000",
    "0xff80, 0xff800000",
  })
  void bf16ToFloatIsTheUpperHalf(String bf16, String floatBits) {
    float expected = Float.intBitsToFloat(Integer.parseUnsignedInt(floatBits.substring(2), 16));
    short b = (short) Integer.parseInt(bf16.substring(2), 16);
    assertBitsEqual(expected, HalfFloats.bf16ToFloat(b), bf16);
  }

  @Test
  void floatToBf16RoundsToNearestEven() {
    assertEquals((short) 0x3f80, HalfFloats.floatToBf16(1f));
    assertEquals((short) 0x3f80, HalfFloats.floatToBf16(1 + 0x1p-8f)); // tie -> even 1.0
    assertEquals((short) 0x3f82, HalfFloats.floatToBf16(1 + 3 * 0x1p-8f)); // tie -> even
    assertEquals((short) 0x3f81, HalfFloats.floatToBf16(Math.nextUp(1 + 0x1p-8f)));
    assertEquals((short) 0x7f80, HalfFloats.floatToBf16(Float.MAX_VALUE)); // overflows
    assertEquals((short) 0xff80, HalfFloats.floatToBf16(-Float.MAX_VALUE));
    assertEquals((short) 0x8000, HalfFloats.floatToBf16(-0f));
    assertTrue(Float.isNaN(HalfFloats.bf16ToFloat(HalfFloats.floatToBf16(Float.NaN))));
    float lowPayloadNaN = Float.intBitsToFloat(0x7f800001);
    assertTrue(Float.isNaN(HalfFloats.bf16ToFloat(HalfFloats.floatToBf16(lowPayloadNaN))));
  }

  @Test
  void floatToBf16AtEveryMidpoint() {
    for (int lo = 0; lo < 0x7f7f; lo++) { // the step to infinity is checked above
      float a = HalfFloats.bf16ToFloat((short) lo);
      float b = HalfFloats.bf16ToFloat((short) (lo + 1));
      float mid = Float.intBitsToFloat((Float.floatToRawIntBits(a) + Float.floatToRawIntBits(b)) >>> 1);
      assertEquals((float) (((double) a + b) / 2), mid); // the bit midpoint is the value midpoint
      short even = (short) ((lo & 1) == 0 ? lo : lo + 1);
      assertEquals(even, HalfFloats.floatToBf16(mid), "midpoint above " + Integer.toHexString(lo));
      assertEquals((short) lo, HalfFloats.floatToBf16(Math.nextDown(mid)));
      assertEquals((short) (lo + 1), HalfFloats.floatToBf16(Math.nextUp(mid)));
      assertEquals((short) lo, HalfFloats.floatToBf16(a));
    }
  }
}
