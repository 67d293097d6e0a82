package org.loratransplant.eval;

/**
 * Turns generated text into an answer. The TiTok authors take the last line; tiny models keep
 * writing after the answer, so by default we take the first non-empty line (configurable). Either
 * way the line is trimmed and surrounding quotes and a leading "A:"/"Answer:" are removed.
 */
public final class Answers {
  private Answers() {}

  public static String extract(String generated, boolean firstLine) {
    String[] lines = generated.split("\n");
    String pick = "";
    for (int i = 0; i < lines.length; i++) {
      String l = lines[firstLine ? i : lines.length - 1 - i].strip();
      if (!l.isEmpty()) {
        pick = l;
        break;
      }
    }
    pick = pick.replaceFirst("^(?i)(answer|a)\\s*:\\s*", "");
    if (pick.length() >= 2 && (pick.startsWith("\"") && pick.endsWith("\"")
        || pick.startsWith("'") && pick.endsWith("'"))) {
      pick = pick.substring(1, pick.length() - 1).strip();
    }
    return pick;
  }

  /** Exact match after trimming. */
  public static boolean matches(String answer, String target) {
    return answer.strip().equals(target.strip());
  }
}
