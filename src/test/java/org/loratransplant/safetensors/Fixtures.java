package org.loratransplant.safetensors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.function.Executable;

/** Shared test helpers: the read-only reference files and hand-built safetensors files. */
final class Fixtures {
  private Fixtures() {}

  /** The shared read-only directory (surefire sets {@code lt.shared.dir}). */
  static Path shared() {
    return Path.of(System.getProperty("lt.shared.dir", "../shared"));
  }

  /** A reference file under {@link #shared()}; fails (does not skip) when it is missing. */
  static Path sharedFile(String relative) {
    Path p = shared().resolve(relative);
    assertTrue(
        Files.exists(p), "reference file missing: " + p.toAbsolutePath() + " (set -Dlt.shared.dir)");
    return p;
  }

  /** A file made of the 8-byte length of {@code header}, the header, then {@code data}. */
  static byte[] rawFile(String header, byte[] data) {
    byte[] h = header.getBytes(StandardCharsets.UTF_8);
    return ByteBuffer.allocate(8 + h.length + data.length)
        .order(ByteOrder.LITTLE_ENDIAN)
        .putLong(h.length)
        .put(h)
        .put(data)
        .array();
  }

  static Path write(Path dir, String name, byte[] content) throws IOException {
    return Files.write(dir.resolve(name), content);
  }

  /** Bytes 0, 1, 2, ... so that misplaced reads show up as wrong values. */
  static byte[] counting(int n) {
    byte[] b = new byte[n];
    for (int i = 0; i < n; i++) {
      b[i] = (byte) i;
    }
    return b;
  }

  /**
   * Asserts that {@code action} fails with a {@link SafeTensorsException} whose message contains
   * every one of {@code expected} (the file, the tensor, the problem).
   */
  static SafeTensorsException assertFails(Executable action, String... expected) {
    SafeTensorsException e = assertThrows(SafeTensorsException.class, action);
    for (String s : expected) {
      assertTrue(e.getMessage().contains(s), "message lacks '" + s + "': " + e.getMessage());
    }
    return e;
  }

  static void assertBitsEqual(float expected, float actual, String what) {
    assertEquals(
        Float.floatToRawIntBits(expected),
        Float.floatToRawIntBits(actual),
        what + ": expected " + expected + " got " + actual);
  }
}
