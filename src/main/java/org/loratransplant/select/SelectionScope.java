package org.loratransplant.select;

/** Over which tokens the k% is taken. */
public enum SelectionScope {
  /** Each response on its own (the paper). */
  SAMPLE("sample"),
  /** A group of responses flattened together (the authors' code: a training batch of 4). */
  GROUP("group");

  public static final String KEY = "lt.select.scope";

  private final String configName;

  SelectionScope(String configName) {
    this.configName = configName;
  }

  public String configName() {
    return configName;
  }

  public static SelectionScope parse(String s) {
    return TokenMode.Settings.parse(KEY, values(), SelectionScope::configName, s);
  }
}
