package org.loratransplant.config;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigRenderOptions;
import com.typesafe.config.ConfigValue;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * The settings that differ between two resolved configurations, in words: what a user needs to
 * see when a run directory is refused for holding a run of other settings (which key moved, and
 * how to get the old value back with {@code --set}).
 */
public final class SettingsDiff {
  private static final ConfigRenderOptions CONCISE = ConfigRenderOptions.concise();

  private SettingsDiff() {}

  /** One changed setting: its path and its rendered values (null where it is absent). */
  public record Change(String path, String before, String after) {
    @Override
    public String toString() {
      return path + ": " + (before == null ? "(absent)" : before) + " -> "
          + (after == null ? "(absent)" : after);
    }
  }

  /** Every leaf path whose value differs, sorted by path. */
  public static List<Change> changes(Config before, Config after) {
    Map<String, String> b = leaves(before);
    Map<String, String> a = leaves(after);
    TreeSet<String> paths = new TreeSet<>(b.keySet());
    paths.addAll(a.keySet());
    List<Change> out = new ArrayList<>();
    for (String p : paths) {
      String x = b.get(p);
      String y = a.get(p);
      if (x == null ? y != null : !x.equals(y)) {
        out.add(new Change(p, x, y));
      }
    }
    return out;
  }

  /**
   * The first {@code max} changes joined with "; ", and how many more there are; prefixed by
   * {@code prefix} on each path (e.g. "lt." for --set).
   */
  public static String describe(List<Change> changes, int max, String prefix) {
    StringBuilder sb = new StringBuilder();
    for (int i = 0; i < Math.min(max, changes.size()); i++) {
      sb.append(i == 0 ? "" : "; ").append(prefix).append(changes.get(i));
    }
    if (changes.size() > max) {
      sb.append("; and ").append(changes.size() - max).append(" more");
    }
    return sb.toString();
  }

  private static Map<String, String> leaves(Config c) {
    Map<String, String> m = new TreeMap<>();
    for (Map.Entry<String, ConfigValue> e : c.entrySet()) {
      // A string as written after --set k=v (unquoted); lists and numbers as HOCON.
      ConfigValue v = e.getValue();
      m.put(e.getKey(), v.valueType() == com.typesafe.config.ConfigValueType.STRING
          ? (String) v.unwrapped() : v.render(CONCISE));
    }
    return m;
  }
}
