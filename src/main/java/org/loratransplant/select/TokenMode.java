package org.loratransplant.select;

import java.util.Arrays;
import java.util.stream.Collectors;

/**
 * How a kept sample's tokens become its loss mask. Selection "off" is {@link #ALL} (plain SFT on
 * every token), not a mode that keeps nothing.
 */
public enum TokenMode {
  /** The top {@code floor(k% x n)} tokens by excess (TiTok). */
  TOP_K("top-k"),
  /** Every token (k = 100%): token selection off, i.e. SFT. */
  ALL("all"),
  /** As many tokens as top-k keeps, at uniformly random positions: the control for top-k. */
  RANDOM("random"),
  /** Whole words by mean piece excess, so an answer's first piece is never split off its word. */
  WORD("word");

  public static final String KEY = "lt.select.token-mode";

  private final String configName;

  TokenMode(String configName) {
    this.configName = configName;
  }

  public String configName() {
    return configName;
  }

  public static TokenMode parse(String s) {
    return Settings.parse(KEY, values(), TokenMode::configName, s);
  }

  /** Shared parsing for the selection enums: one message shape naming the key and the choices. */
  static final class Settings {
    private Settings() {}

    static <E> E parse(String key, E[] values, java.util.function.Function<E, String> name,
        String s) {
      for (E e : values) {
        if (name.apply(e).equals(s)) {
          return e;
        }
      }
      throw new IllegalArgumentException(key + " must be one of "
          + Arrays.stream(values).map(name).collect(Collectors.joining(", ")) + "; got '" + s
          + "'");
    }
  }
}
