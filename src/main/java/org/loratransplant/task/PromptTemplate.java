package org.loratransplant.task;

import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A text with {@code {name}} placeholders. Rendering fails on a placeholder that has no value,
 * naming the template, so a typo in conf/ is caught before a long job starts.
 */
public record PromptTemplate(String name, String text) implements java.io.Serializable {
  private static final Pattern PLACEHOLDER = Pattern.compile("\\{([a-z_]+)}");

  public String render(Map<String, String> values) {
    Matcher m = PLACEHOLDER.matcher(text);
    StringBuilder sb = new StringBuilder();
    while (m.find()) {
      String v = values.get(m.group(1));
      if (v == null) {
        throw new IllegalArgumentException("prompt template '" + name + "' uses {" + m.group(1)
            + "} but only " + values.keySet() + " are available");
      }
      m.appendReplacement(sb, Matcher.quoteReplacement(v));
    }
    m.appendTail(sb);
    return sb.toString();
  }

  /** Checks that every placeholder is one of {@code allowed}. */
  public PromptTemplate check(java.util.Set<String> allowed) {
    Matcher m = PLACEHOLDER.matcher(text);
    while (m.find()) {
      if (!allowed.contains(m.group(1))) {
        throw new IllegalArgumentException("prompt template '" + name + "' uses unknown "
            + "placeholder {" + m.group(1) + "} (allowed: " + allowed + ")");
      }
    }
    return this;
  }
}
