package org.loratransplant.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Path;
import org.loratransplant.safetensors.SafeTensorsFile;

/** Assertions on saved adapters. */
public final class Adapters {
  private Adapters() {}

  /**
   * Two adapter weight files hold the same tensors with the same values, within 1e-6 relative
   * (resumed training against an uninterrupted run); prints the largest difference.
   */
  public static void assertSameWeights(Path expected, Path actual) {
    try (SafeTensorsFile a = SafeTensorsFile.open(expected);
        SafeTensorsFile b = SafeTensorsFile.open(actual)) {
      assertEquals(a.names(), b.names());
      double maxDiff = 0;
      for (String name : a.names()) {
        float[] x = a.readFloat32(name);
        float[] y = b.readFloat32(name);
        for (int i = 0; i < x.length; i++) {
          assertEquals(x[i], y[i], 1e-6f * Math.max(1f, Math.abs(x[i])), name + "[" + i + "]");
          maxDiff = Math.max(maxDiff, Math.abs(x[i] - y[i]));
        }
      }
      System.out.println("resumed vs uninterrupted adapter: max |difference| " + maxDiff);
    }
  }
}
