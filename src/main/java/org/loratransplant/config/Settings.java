package org.loratransplant.config;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigParseOptions;
import com.typesafe.config.ConfigRenderOptions;
import com.typesafe.config.ConfigResolveOptions;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;

/**
 * The resolved configuration of a run: an experiment file from conf/ (which includes
 * base.conf), then {@code --set key=value} overrides from the command line. Missing files and
 * keys are errors that name them.
 */
public final class Settings {
  private final Config config;
  private final String source;

  private Settings(Config config, String source) {
    this.config = config;
    this.source = source;
  }

  /**
   * Loads {@code file} (or the embedded {@code default.conf} when null) with overrides applied
   * last, e.g. {@code lt.train.epochs=3}.
   */
  public static Settings load(Path file, List<String> overrides) {
    Config base;
    String source;
    if (file == null) {
      base = ConfigFactory.parseResources(Settings.class, "default.conf",
          ConfigParseOptions.defaults().setAllowMissing(false));
      source = "embedded default.conf";
    } else {
      if (!Files.isRegularFile(file)) {
        throw new IllegalArgumentException("config file " + file + " does not exist");
      }
      try {
        base = ConfigFactory.parseFile(file.toFile(),
            ConfigParseOptions.defaults().setAllowMissing(false));
      } catch (ConfigException e) {
        throw new IllegalArgumentException("config file " + file + ": " + e.getMessage(), e);
      }
      source = file.toString();
    }
    Config over = ConfigFactory.empty();
    for (String o : overrides) {
      int eq = o.indexOf('=');
      if (eq <= 0) {
        throw new IllegalArgumentException("override '" + o + "' is not key=value");
      }
      String key = o.substring(0, eq).strip();
      if (!key.startsWith("lt.")) {
        key = "lt." + key;
      }
      try {
        over = ConfigFactory.parseString(key + " = " + quoteIfNeeded(o.substring(eq + 1)))
            .withFallback(over);
      } catch (ConfigException e) {
        throw new IllegalArgumentException("override '" + o + "': " + e.getMessage(), e);
      }
    }
    Config all;
    try {
      all = over.withFallback(base).resolve(ConfigResolveOptions.defaults()
          .setAllowUnresolved(false));
    } catch (ConfigException e) {
      throw new IllegalArgumentException(source + ": " + e.getMessage(), e);
    }
    for (String o : overrides) {
      String key = o.substring(0, o.indexOf('=')).strip();
      String full = key.startsWith("lt.") ? key : "lt." + key;
      if (!base.hasPathOrNull(full)) {
        throw new IllegalArgumentException("override '" + o + "': no setting '" + full + "' in "
            + source);
      }
    }
    return new Settings(all.getConfig("lt"), source);
  }

  private static String quoteIfNeeded(String v) {
    String s = v.strip();
    if (s.startsWith("[") || s.startsWith("{") || s.startsWith("\"")) {
      return s;
    }
    return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
  }

  /**
   * These settings with {@code overlay} (paths relative to {@code lt}) taking precedence: how a
   * comparison derives each cell's settings from the experiment's.
   */
  public Settings overlay(Config overlay, String what) {
    try {
      return new Settings(overlay.withFallback(config).resolve(), source + " + " + what);
    } catch (ConfigException e) {
      throw new IllegalArgumentException(source + " + " + what + ": " + e.getMessage(), e);
    }
  }

  /** {@link #overlay} from {@code key = value} pairs. */
  public Settings overlay(java.util.Map<String, Object> values, String what) {
    return overlay(ConfigFactory.parseMap(values), what);
  }

  public Config config() {
    return config;
  }

  public String source() {
    return source;
  }

  /** The resolved settings as HOCON, comments stripped: logged and stored beside outputs. */
  public String render() {
    return config.root().render(ConfigRenderOptions.concise().setFormatted(true)
        .setJson(false));
  }

  /** A stable hash of a subtree's resolved values (what a stage's output depends on). */
  public static String hash(Config c) {
    try {
      MessageDigest md = MessageDigest.getInstance("SHA-256");
      md.update(c.root().render(ConfigRenderOptions.concise()).getBytes(StandardCharsets.UTF_8));
      return HexFormat.of().formatHex(md.digest()).substring(0, 16);
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }
}
