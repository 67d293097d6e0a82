package org.loratransplant.testing;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** The read-only {@code ../shared} tree (models, fixtures, data) that tests check against. */
public final class SharedData {
  private static final ObjectMapper JSON = new ObjectMapper();

  private SharedData() {}

  public static Path root() {
    Path p = Path.of(System.getProperty("lt.shared.dir", "../shared")).toAbsolutePath().normalize();
    if (!Files.isDirectory(p.resolve("models"))) {
      throw new IllegalStateException("shared data not found at " + p
          + " (set -Dlt.shared.dir=...)");
    }
    return p;
  }

  public static Path model(String name) {
    return root().resolve("models").resolve(name);
  }

  public static Path hfReference(String name) {
    return root().resolve("fixtures/hf-reference").resolve(name);
  }

  public static Path llama2c(String file) {
    return root().resolve("fixtures/llama2c").resolve(file);
  }

  public static JsonNode json(Path file) {
    try {
      return JSON.readTree(file.toFile());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  public static String text(Path file) {
    try {
      return Files.readString(file);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  public static int[] ints(JsonNode array) {
    int[] out = new int[array.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = array.get(i).asInt();
    }
    return out;
  }

  public static double[] doubles(JsonNode array) {
    double[] out = new double[array.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = array.get(i).asDouble();
    }
    return out;
  }
}
