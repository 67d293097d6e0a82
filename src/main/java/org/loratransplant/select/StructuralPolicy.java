package org.loratransplant.select;

/**
 * What happens to structural tokens (trailing newlines, EOS, template specials). They carry the
 * largest excess when the base never learned the answer format, so under the paper's ranking
 * they crowd out the answer's own pieces; the EOS of the tiny models cannot even be learned (its
 * lm_head row is ~0).
 */
public enum StructuralPolicy {
  /** Always in the loss; k% is taken over content tokens only. */
  KEEP("keep"),
  /** Never in the loss; k% is taken over content tokens only. */
  DROP("drop"),
  /** Compete with content tokens for the k% like any token (the paper's behaviour). */
  RANK("rank");

  public static final String KEY = "lt.select.structural";

  private final String configName;

  StructuralPolicy(String configName) {
    this.configName = configName;
  }

  public String configName() {
    return configName;
  }

  public static StructuralPolicy parse(String s) {
    return TokenMode.Settings.parse(KEY, values(), StructuralPolicy::configName, s);
  }
}
