package org.loratransplant.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A command's options: declared with a help line, then parsed strictly. Unknown options, missing
 * values and malformed numbers are {@link UsageException}s that name the option.
 */
public final class Options {
  private record Spec(String name, String valueName, String help, String defaultValue,
      boolean repeatable) {}

  private final String command;
  private final String summary;
  private final Map<String, Spec> specs = new LinkedHashMap<>();
  private final Map<String, List<String>> values = new LinkedHashMap<>();

  public Options(String command, String summary) {
    this.command = command;
    this.summary = summary;
    flag("help", "print this help and exit");
  }

  /** An option that takes a value; {@code defaultValue} null means optional with no default. */
  public Options value(String name, String valueName, String help, String defaultValue) {
    specs.put(name, new Spec(name, valueName, help, defaultValue, false));
    return this;
  }

  /** An option that may be given several times. */
  public Options repeated(String name, String valueName, String help) {
    specs.put(name, new Spec(name, valueName, help, null, true));
    return this;
  }

  /** A boolean switch. */
  public Options flag(String name, String help) {
    specs.put(name, new Spec(name, null, help, null, false));
    return this;
  }

  /** Parses {@code args}; returns false when --help was asked for (usage already printed). */
  public boolean parse(String[] args) {
    for (int i = 0; i < args.length; i++) {
      String a = args[i];
      if (!a.startsWith("--")) {
        throw new UsageException("unexpected argument '" + a + "'");
      }
      String name = a.substring(2);
      String inline = null;
      int eq = name.indexOf('=');
      if (eq >= 0) {
        inline = name.substring(eq + 1);
        name = name.substring(0, eq);
      }
      Spec spec = specs.get(name);
      if (spec == null) {
        throw new UsageException("unknown option --" + name);
      }
      String v;
      if (spec.valueName() == null) {
        if (inline != null) {
          throw new UsageException("--" + name + " takes no value");
        }
        v = "true";
      } else if (inline != null) {
        v = inline;
      } else {
        if (i + 1 >= args.length) {
          throw new UsageException("--" + name + " needs a value (" + spec.valueName() + ")");
        }
        v = args[++i];
      }
      List<String> list = values.computeIfAbsent(name, k -> new ArrayList<>());
      if (!list.isEmpty() && !spec.repeatable()) {
        throw new UsageException("--" + name + " given more than once");
      }
      list.add(v);
    }
    if (has("help")) {
      System.out.println(usage());
      return false;
    }
    return true;
  }

  public boolean has(String name) {
    return values.containsKey(name);
  }

  /** The value, its default, or {@code null}. */
  public String get(String name) {
    List<String> v = values.get(name);
    if (v != null) {
      return v.get(0);
    }
    Spec s = specs.get(name);
    if (s == null) {
      throw new IllegalArgumentException("option --" + name + " is not declared");
    }
    return s.defaultValue();
  }

  public List<String> all(String name) {
    return values.getOrDefault(name, List.of());
  }

  public String required(String name) {
    String v = get(name);
    if (v == null) {
      throw new UsageException("--" + name + " is required");
    }
    return v;
  }

  public Path path(String name) {
    String v = required(name);
    return Path.of(v);
  }

  public int integer(String name) {
    String v = required(name);
    try {
      return Integer.parseInt(v);
    } catch (NumberFormatException e) {
      throw new UsageException("--" + name + " must be an integer, got '" + v + "'");
    }
  }

  public long longValue(String name) {
    String v = required(name);
    try {
      return Long.parseLong(v);
    } catch (NumberFormatException e) {
      throw new UsageException("--" + name + " must be an integer, got '" + v + "'");
    }
  }

  public double number(String name) {
    String v = required(name);
    try {
      return Double.parseDouble(v);
    } catch (NumberFormatException e) {
      throw new UsageException("--" + name + " must be a number, got '" + v + "'");
    }
  }

  /** Comma-separated integers, e.g. {@code 1,8,32}. */
  public int[] integers(String name) {
    String v = required(name);
    try {
      return java.util.Arrays.stream(v.split(",")).map(String::trim).filter(s -> !s.isEmpty())
          .mapToInt(Integer::parseInt).toArray();
    } catch (NumberFormatException e) {
      throw new UsageException("--" + name + " must be comma-separated integers, got '" + v + "'");
    }
  }

  public String usage() {
    StringBuilder sb = new StringBuilder();
    sb.append("usage: jobs/lt ").append(command).append(" [options]\n\n").append(summary)
        .append("\n\noptions:\n");
    for (Spec s : specs.values()) {
      String left = "  --" + s.name() + (s.valueName() == null ? "" : " " + s.valueName());
      sb.append(String.format("%-32s %s", left, s.help()));
      if (s.defaultValue() != null) {
        sb.append(" (default ").append(s.defaultValue()).append(')');
      }
      if (s.repeatable()) {
        sb.append(" (repeatable)");
      }
      sb.append('\n');
    }
    return sb.toString();
  }
}
