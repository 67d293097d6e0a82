package org.loratransplant.lora;

import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * JSON written the way Python's {@code json.dumps(obj, indent=2, sort_keys=True)} writes it,
 * which is how PEFT saves {@code adapter_config.json}: a config we write is then byte-for-byte
 * what PEFT would have written for the same values. Values: null, Boolean, Integer/Long,
 * Double, String, List, Map.
 */
final class PythonJson {
  private PythonJson() {}

  static String dumps(Map<String, ?> obj) {
    StringBuilder sb = new StringBuilder();
    write(sb, obj, 0);
    return sb.toString();
  }

  private static void write(StringBuilder sb, Object v, int depth) {
    if (v == null) {
      sb.append("null");
    } else if (v instanceof Boolean b) {
      sb.append(b ? "true" : "false");
    } else if (v instanceof Integer || v instanceof Long) {
      sb.append(v);
    } else if (v instanceof Double d) {
      sb.append(pythonFloat(d));
    } else if (v instanceof String s) {
      quote(sb, s);
    } else if (v instanceof List<?> list) {
      if (list.isEmpty()) {
        sb.append("[]");
        return;
      }
      sb.append("[\n");
      for (int i = 0; i < list.size(); i++) {
        indent(sb, depth + 1);
        write(sb, list.get(i), depth + 1);
        sb.append(i + 1 < list.size() ? ",\n" : "\n");
      }
      indent(sb, depth);
      sb.append(']');
    } else if (v instanceof Map<?, ?> map) {
      if (map.isEmpty()) {
        sb.append("{}");
        return;
      }
      Map<String, Object> sorted = new TreeMap<>();
      map.forEach((k, val) -> sorted.put(String.valueOf(k), val));
      sb.append("{\n");
      int i = 0;
      for (Map.Entry<String, Object> e : sorted.entrySet()) {
        indent(sb, depth + 1);
        quote(sb, e.getKey());
        sb.append(": ");
        write(sb, e.getValue(), depth + 1);
        sb.append(++i < sorted.size() ? ",\n" : "\n");
      }
      indent(sb, depth);
      sb.append('}');
    } else {
      throw new IllegalArgumentException("cannot write " + v.getClass() + " as JSON");
    }
  }

  /** Python's repr of a float: shortest round-trip digits, always with a '.0' or exponent. */
  static String pythonFloat(double d) {
    if (d == Math.rint(d) && Math.abs(d) < 1e16) {
      return (long) d + ".0";
    }
    String s = Double.toString(d);
    // Java writes 1.0E-5 where Python writes 1e-05.
    int e = s.indexOf('E');
    if (e < 0) {
      return s;
    }
    String mant = s.substring(0, e);
    if (mant.endsWith(".0")) {
      mant = mant.substring(0, mant.length() - 2);
    }
    int exp = Integer.parseInt(s.substring(e + 1));
    return mant + "e" + (exp < 0 ? "-" : "+") + String.format("%02d", Math.abs(exp));
  }

  private static void quote(StringBuilder sb, String s) {
    sb.append('"');
    for (char c : s.toCharArray()) {
      switch (c) {
        case '"' -> sb.append("\\\"");
        case '\\' -> sb.append("\\\\");
        case '\n' -> sb.append("\\n");
        case '\t' -> sb.append("\\t");
        case '\r' -> sb.append("\\r");
        default -> {
          if (c < 0x20 || c > 0x7e) {
            sb.append(String.format("\\u%04x", (int) c)); // ensure_ascii=True
          } else {
            sb.append(c);
          }
        }
      }
    }
    sb.append('"');
  }

  private static void indent(StringBuilder sb, int depth) {
    sb.append("  ".repeat(depth));
  }
}
