package org.loratransplant.eval;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;

/** Evaluation reports as a Markdown table and as JSON (written atomically). */
public final class Reports {
  private static final ObjectMapper JSON = new ObjectMapper()
      .enable(SerializationFeature.INDENT_OUTPUT);

  private Reports() {}

  public static String markdown(String task, List<Evaluator.Report> reports) {
    StringBuilder sb = new StringBuilder();
    sb.append("Task: ").append(task).append(" (95% intervals: Wilson for accuracies, t for ROUGE)\n\n");
    sb.append("| system | n | exact match | choice accuracy | ROUGE-1 F | ROUGE-L F |\n");
    sb.append("|---|---|---|---|---|---|\n");
    for (Evaluator.Report r : reports) {
      sb.append("| ").append(r.system()).append(" | ").append(r.n()).append(" | ")
          .append(cell(r.exactMatch())).append(" | ")
          .append(r.choiceAccuracy() == null ? "n/a (open answers)" : cell(r.choiceAccuracy()))
          .append(" | ").append(cell(r.rouge1())).append(" | ").append(cell(r.rougeL()))
          .append(" |\n");
    }
    return sb.toString();
  }

  private static String cell(Interval i) {
    return Double.isNaN(i.lo()) ? String.format("%.3f", i.value())
        : String.format("%.3f [%.3f, %.3f]", i.value(), i.lo(), i.hi());
  }

  public static ObjectNode json(String task, List<Evaluator.Report> reports, boolean withRows) {
    ObjectNode root = JSON.createObjectNode();
    root.put("task", task);
    ArrayNode systems = root.putArray("systems");
    for (Evaluator.Report r : reports) {
      ObjectNode s = systems.addObject();
      s.put("system", r.system());
      s.put("n", r.n());
      put(s, "exact_match", r.exactMatch());
      if (r.choiceAccuracy() != null) {
        put(s, "choice_accuracy", r.choiceAccuracy());
      }
      put(s, "rouge1_f", r.rouge1());
      put(s, "rougeL_f", r.rougeL());
      if (withRows) {
        ArrayNode rows = s.putArray("examples");
        for (Evaluator.Row row : r.rows()) {
          ObjectNode o = rows.addObject();
          o.put("input", row.input());
          o.put("target", row.target());
          o.put("generated", row.generated());
          o.put("answer", row.answer());
          o.put("exact", row.exact());
          o.put("rouge1", row.rouge1());
          o.put("rougeL", row.rougeL());
          if (row.choice() != null) {
            o.put("choice", row.choice());
          }
        }
      }
    }
    return root;
  }

  private static void put(ObjectNode s, String name, Interval i) {
    ObjectNode o = s.putObject(name);
    o.put("value", i.value());
    o.put("ci95_lo", i.lo());
    o.put("ci95_hi", i.hi());
    o.put("n", i.n());
  }

  public static void writeJson(Path file, ObjectNode root) {
    try {
      Path abs = file.toAbsolutePath();
      Files.createDirectories(abs.getParent());
      Path tmp = Files.createTempFile(abs.getParent(), "." + abs.getFileName(), ".tmp");
      JSON.writeValue(tmp.toFile(), root);
      Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    } catch (IOException e) {
      throw new IllegalStateException("cannot write " + file + ": " + e.getMessage(), e);
    }
  }

  /**
   * A job's report in {@code out}: {@code <stem>.json}, {@code <stem>.md} and the settings that
   * produced it ({@code lt_settings.conf}).
   */
  public static void writeReport(Path out, String stem, ObjectNode root, String markdown,
      String settings) {
    try {
      Files.createDirectories(out);
      writeJson(out.resolve(stem + ".json"), root);
      Files.writeString(out.resolve(stem + ".md"), markdown, StandardCharsets.UTF_8);
      Files.writeString(out.resolve("lt_settings.conf"), settings, StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new IllegalStateException("cannot write the report to " + out + ": "
          + e.getMessage(), e);
    }
  }

  public static String toJson(Object o) {
    try {
      return JSON.writeValueAsString(o);
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
  }
}
