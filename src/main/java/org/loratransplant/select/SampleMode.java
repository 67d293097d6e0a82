package org.loratransplant.select;

/** Which M samples of the scored pool are kept for training. */
public enum SampleMode {
  /** The M largest mean excesses (TiTok). */
  TOP_M("top-m"),
  /**
   * The largest mean excesses within each answer class, classes sized like a reference label
   * distribution: top-M alone kept 113 "False" and 7 "True" on boolean_expressions.
   */
  BALANCED("balanced"),
  /** Sample filter off: the first M by sample id (a random subset: ids are generation order). */
  NONE("none");

  public static final String KEY = "lt.select.sample-mode";

  private final String configName;

  SampleMode(String configName) {
    this.configName = configName;
  }

  public String configName() {
    return configName;
  }

  public static SampleMode parse(String s) {
    return TokenMode.Settings.parse(KEY, values(), SampleMode::configName, s);
  }
}
