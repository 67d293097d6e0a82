package org.loratransplant.task;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Reads a task file: BIG-Bench-Hard JSON ({@code {"examples": [{"input", "target"}]}}), MMLU CSV
 * ({@code question,choice0,choice1,choice2,choice3,answer}) or JSONL ({@code {"input","target"}}
 * per line). Errors name the file and the row or line.
 */
public final class TaskFiles {
  private static final ObjectMapper JSON = new ObjectMapper();
  /** MMLU's options are rendered with these letters; the target is the letter. */
  public static final List<String> LETTERS = List.of("A", "B", "C", "D");

  private TaskFiles() {}

  public static Task load(Path file) {
    if (!Files.isRegularFile(file)) {
      throw new TaskFormatException(file + ": no such task file");
    }
    String name = file.getFileName().toString();
    String text;
    try {
      text = Files.readString(file, StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new TaskFormatException(file + ": cannot read: " + e.getMessage(), e);
    }
    String base = name.replaceFirst("\\.[^.]+$", "");
    List<TaskExample> examples;
    if (name.endsWith(".jsonl")) {
      examples = jsonl(file, text);
    } else if (name.endsWith(".json")) {
      examples = bbh(file, text);
    } else if (name.endsWith(".csv")) {
      examples = mmlu(file, text);
    } else {
      throw new TaskFormatException(file + ": unknown task format (expected .json BBH, .csv MMLU "
          + "or .jsonl)");
    }
    if (examples.isEmpty()) {
      throw new TaskFormatException(file + ": the task has no examples");
    }
    return new Task(base, examples);
  }

  private static List<TaskExample> bbh(Path file, String text) {
    JsonNode root;
    try {
      root = JSON.readTree(text);
    } catch (IOException e) {
      throw new TaskFormatException(file + ": not valid JSON: " + e.getMessage(), e);
    }
    JsonNode ex = root == null ? null : root.get("examples");
    if (ex == null || !ex.isArray()) {
      throw new TaskFormatException(file + ": expected an object with an \"examples\" list");
    }
    List<TaskExample> out = new ArrayList<>();
    for (int i = 0; i < ex.size(); i++) {
      out.add(example(ex.get(i), file + ": example " + i));
    }
    return out;
  }

  private static List<TaskExample> jsonl(Path file, String text) {
    List<TaskExample> out = new ArrayList<>();
    String[] lines = text.split("\n", -1);
    for (int i = 0; i < lines.length; i++) {
      String line = lines[i].strip();
      if (line.isEmpty()) {
        continue;
      }
      JsonNode node;
      try {
        node = JSON.readTree(line);
      } catch (IOException e) {
        throw new TaskFormatException(file + ": line " + (i + 1) + " is not valid JSON: "
            + e.getMessage(), e);
      }
      out.add(example(node, file + ": line " + (i + 1)));
    }
    return out;
  }

  private static TaskExample example(JsonNode node, String where) {
    if (node == null || !node.isObject()) {
      throw new TaskFormatException(where + " is not an object");
    }
    JsonNode in = node.get("input");
    JsonNode tg = node.get("target");
    if (in == null || !in.isTextual()) {
      throw new TaskFormatException(where + " has no string \"input\"");
    }
    if (tg == null || !(tg.isTextual() || tg.isNumber() || tg.isBoolean())) {
      throw new TaskFormatException(where + " has no string \"target\"");
    }
    return new TaskExample(in.asText(), tg.asText());
  }

  private static List<TaskExample> mmlu(Path file, String text) {
    List<List<String>> rows = Csv.parse(text, file);
    if (rows.isEmpty()) {
      throw new TaskFormatException(file + ": empty CSV");
    }
    List<String> header = rows.get(0);
    List<String> want = List.of("question", "choice0", "choice1", "choice2", "choice3", "answer");
    if (!header.equals(want)) {
      throw new TaskFormatException(file + ": row 1: expected the header " + String.join(",", want)
          + ", got " + String.join(",", header));
    }
    List<TaskExample> out = new ArrayList<>();
    for (int r = 1; r < rows.size(); r++) {
      List<String> row = rows.get(r);
      if (row.size() == 1 && row.get(0).isEmpty()) {
        continue;
      }
      if (row.size() != 6) {
        throw new TaskFormatException(file + ": row " + (r + 1) + " has " + row.size()
            + " fields, expected 6");
      }
      int answer;
      try {
        answer = Integer.parseInt(row.get(5).strip());
      } catch (NumberFormatException e) {
        answer = -1;
      }
      if (answer < 0 || answer > 3) {
        throw new TaskFormatException(file + ": row " + (r + 1) + ": answer '" + row.get(5)
            + "' is not 0-3");
      }
      StringBuilder in = new StringBuilder(row.get(0));
      for (int c = 0; c < 4; c++) {
        in.append('\n').append(LETTERS.get(c)).append(". ").append(row.get(1 + c));
      }
      out.add(new TaskExample(in.toString(), LETTERS.get(answer), LETTERS));
    }
    return out;
  }

  /** RFC 4180 CSV: quoted fields may hold commas, doubled quotes and newlines. */
  static final class Csv {
    private Csv() {}

    static List<List<String>> parse(String text, Path file) {
      List<List<String>> rows = new ArrayList<>();
      List<String> row = new ArrayList<>();
      StringBuilder field = new StringBuilder();
      boolean quoted = false;
      boolean any = false;
      int line = 1;
      for (int i = 0; i < text.length(); i++) {
        char c = text.charAt(i);
        any = true;
        if (quoted) {
          if (c == '"') {
            if (i + 1 < text.length() && text.charAt(i + 1) == '"') {
              field.append('"');
              i++;
            } else {
              quoted = false;
            }
          } else {
            if (c == '\n') {
              line++;
            }
            field.append(c);
          }
        } else if (c == '"') {
          if (field.length() > 0) {
            throw new TaskFormatException(file + ": line " + line + ": quote inside an unquoted "
                + "field");
          }
          quoted = true;
        } else if (c == ',') {
          row.add(field.toString());
          field.setLength(0);
        } else if (c == '\n' || c == '\r') {
          if (c == '\r' && i + 1 < text.length() && text.charAt(i + 1) == '\n') {
            i++;
          }
          row.add(field.toString());
          field.setLength(0);
          rows.add(row);
          row = new ArrayList<>();
          any = false;
          line++;
        } else {
          field.append(c);
        }
      }
      if (quoted) {
        throw new TaskFormatException(file + ": unterminated quoted field at end of file");
      }
      if (any) {
        row.add(field.toString());
        rows.add(row);
      }
      return rows;
    }
  }
}
