package org.loratransplant.testing;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.apache.spark.sql.SparkSession;

/** Runs every {@code %%sql} cell of every notebook, so notebooks cannot rot. */
public final class NotebookRunner {
  private NotebookRunner() {}

  /** Returns how many SQL cells ran; each must run and return at least one row. */
  public static int runSqlCells(SparkSession spark, Path dir) throws IOException {
    int n = 0;
    List<Path> books;
    try (Stream<Path> s = Files.list(dir)) {
      books = s.filter(p -> p.toString().endsWith(".ipynb")).sorted().toList();
    }
    for (Path nb : books) {
      JsonNode root = SharedData.json(nb);
      int cell = 0;
      for (JsonNode c : root.get("cells")) {
        cell++;
        StringBuilder src = new StringBuilder();
        c.get("source").forEach(l -> src.append(l.asText()));
        String text = src.toString().strip();
        if (!c.get("cell_type").asText().equals("code") || !text.startsWith("%%sql")) {
          continue;
        }
        String sql = text.substring("%%sql".length()).strip();
        try {
          long rows = spark.sql(sql).count();
          if (rows == 0) {
            throw new AssertionError(nb + " cell " + cell + " returned no rows:\n" + sql);
          }
        } catch (RuntimeException e) {
          throw new AssertionError(nb + " cell " + cell + " failed: " + e.getMessage() + "\n"
              + sql, e);
        }
        n++;
      }
    }
    return n;
  }
}
