package org.loratransplant.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.loratransplant.config.Experiment;
import org.loratransplant.config.Settings;

/** The config options every config-driven command shares. */
final class ConfCli {
  private ConfCli() {}

  static void declare(Options o) {
    o.value("conf", "FILE", "experiment config (default: the embedded conf/default.conf)", null)
        .repeated("set", "KEY=VALUE", "override a config value, e.g. lt.train.epochs=3");
  }

  static Settings settings(Options o, String... extra) {
    List<String> sets = new ArrayList<>(o.all("set"));
    for (int i = 0; i + 1 < extra.length; i += 2) {
      if (extra[i + 1] != null) {
        sets.add(extra[i] + "=" + extra[i + 1]);
      }
    }
    try {
      return Settings.load(o.has("conf") ? Path.of(o.get("conf")) : null, sets);
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage());
    }
  }

  static Experiment experiment(Settings s) {
    return new Experiment(s);
  }
}
