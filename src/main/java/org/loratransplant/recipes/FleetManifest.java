package org.loratransplant.recipes;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigObject;
import com.typesafe.config.ConfigParseOptions;
import com.typesafe.config.ConfigSyntax;
import com.typesafe.config.ConfigValue;
import com.typesafe.config.ConfigValueType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * The list of adapters a fleet migration moves: {@value #CONF} (HOCON) or {@value #JSON} in the
 * adapters directory, one entry per adapter:
 *
 * <pre>
 * adapters = [
 *   { name = bool, adapter = bool-expert, source-model = /models/stories260K,
 *     task = /data/bbh/boolean_expressions.json }
 *   { adapter = sports, source-model = /models/stories260K, task = sports.json, method = titok }
 * ]
 * </pre>
 *
 * {@code adapter} is the adapter's folder, {@code source-model} the base it was trained on,
 * {@code task} its task file (BBH {@code .json}, MMLU {@code .csv} or {@code .jsonl});
 * relative paths are resolved against the adapters directory. {@code name} (default: the
 * folder's name) names the adapter's row and its run directory; {@code method} overrides the
 * job's method for this adapter. The manifest's form is checked whole before any work, each
 * error naming the entry and the field; whether the files it names are sound is the job's
 * per-adapter preflight (a broken adapter fails alone).
 */
public record FleetManifest(Path file, List<Entry> entries) {
  public static final String CONF = "fleet.conf";
  public static final String JSON = "fleet.json";
  private static final Set<String> FIELDS = Set.of("name", "adapter", "source-model", "task",
      "method");
  private static final Set<String> RESERVED = Set.of("fleet_report", "fleet_report.json",
      "fleet_report.md");
  private static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]*");

  /**
   * One adapter to migrate; paths absolute.
   *
   * @param method the method preset for this adapter, or "" for the job's
   */
  public record Entry(String name, Path adapter, Path sourceModel, Path task, String method) {}

  public FleetManifest {
    entries = List.copyOf(entries);
  }

  /** The manifest in {@code dir}, checked. */
  public static FleetManifest load(Path dir) {
    if (!Files.isDirectory(dir)) {
      throw new IllegalArgumentException("--adapters " + dir + ": not a directory");
    }
    Path conf = dir.resolve(CONF);
    Path json = dir.resolve(JSON);
    if (Files.exists(conf) && Files.exists(json)) {
      throw new IllegalArgumentException("--adapters " + dir + ": both " + CONF + " and " + JSON
          + " exist; keep one");
    }
    Path file = Files.exists(conf) ? conf : json;
    if (!Files.isRegularFile(file)) {
      throw new IllegalArgumentException("--adapters " + dir + ": no manifest (" + CONF + " or "
          + JSON + ") listing the adapters");
    }
    Config c;
    try {
      c = ConfigFactory.parseFile(file.toFile(), ConfigParseOptions.defaults()
          .setSyntax(file.equals(json) ? ConfigSyntax.JSON : ConfigSyntax.CONF)
          .setAllowMissing(false)).resolve();
    } catch (ConfigException e) {
      throw new IllegalArgumentException("fleet manifest " + file + ": " + e.getMessage(), e);
    }
    return parse(file, c);
  }

  static FleetManifest parse(Path file, Config c) {
    String where = "fleet manifest " + file;
    for (String key : c.root().keySet()) {
      if (!key.equals("adapters")) {
        throw new IllegalArgumentException(where + ": unknown top-level field '" + key
            + "' (the manifest holds 'adapters', a list)");
      }
    }
    if (!c.hasPath("adapters") || c.getValue("adapters").valueType() != ConfigValueType.LIST) {
      throw new IllegalArgumentException(where + ": 'adapters' must be a list of entries");
    }
    List<? extends ConfigValue> list = c.getList("adapters");
    if (list.isEmpty()) {
      throw new IllegalArgumentException(where + ": 'adapters' is empty");
    }
    Path dir = file.toAbsolutePath().getParent();
    List<Entry> entries = new ArrayList<>();
    Set<String> names = new HashSet<>();
    for (int i = 0; i < list.size(); i++) {
      String at = where + ": adapters[" + i + "]";
      if (!(list.get(i) instanceof ConfigObject o)) {
        throw new IllegalArgumentException(at + " is a " + list.get(i).valueType()
            .name().toLowerCase() + ", not an entry { adapter = ..., source-model = ..., "
            + "task = ... }");
      }
      for (String key : o.keySet()) {
        if (!FIELDS.contains(key)) {
          throw new IllegalArgumentException(at + ": unknown field '" + key + "' (fields: "
              + "name, adapter, source-model, task, method)");
        }
      }
      String adapter = string(o, "adapter", at, true);
      String name = string(o, "name", at, false);
      if (name.isEmpty()) {
        name = Path.of(adapter).getFileName().toString();
      }
      at = at + " (" + name + ")";
      if (!NAME.matcher(name).matches()) {
        throw new IllegalArgumentException(at + ": field 'name' must be letters, digits, '.', "
            + "'_' or '-' (it names the adapter's run directory), got '" + name + "'");
      }
      if (RESERVED.contains(name)) {
        throw new IllegalArgumentException(at + ": field 'name': '" + name + "' is reserved for "
            + "the fleet's report; choose another");
      }
      if (!names.add(name)) {
        throw new IllegalArgumentException(at + ": field 'name': '" + name + "' is used by an "
            + "earlier entry; names must be unique");
      }
      entries.add(new Entry(name, resolve(dir, adapter), resolve(dir, string(o,
          "source-model", at, true)), resolve(dir, string(o, "task", at, true)),
          string(o, "method", at, false)));
    }
    return new FleetManifest(file, entries);
  }

  private static String string(ConfigObject o, String key, String at, boolean required) {
    ConfigValue v = o.get(key);
    if (v == null) {
      if (required) {
        throw new IllegalArgumentException(at + ": field '" + key + "' is missing");
      }
      return "";
    }
    if (v.valueType() != ConfigValueType.STRING) {
      throw new IllegalArgumentException(at + ": field '" + key + "' must be a string, got "
          + v.valueType().name().toLowerCase());
    }
    String s = ((String) v.unwrapped()).strip();
    if (required && s.isEmpty()) {
      throw new IllegalArgumentException(at + ": field '" + key + "' is empty");
    }
    return s;
  }

  private static Path resolve(Path dir, String p) {
    return dir.resolve(p).toAbsolutePath().normalize();
  }

  /**
   * Refuses an entry whose method (its own, else {@code jobMethod}) is no preset of
   * {@code presets} or only evaluates; an empty method means lt.method as set.
   */
  void checkMethods(Config presets, String jobMethod) {
    for (Entry e : entries) {
      String m = e.method().isEmpty() ? jobMethod : e.method();
      String field = e.method().isEmpty() ? "the job's method (--method / lt.titok.method)"
          : "field 'method'";
      if (m.isEmpty()) {
        continue; // lt.method exactly as set, as in titok
      }
      if (!presets.hasPath("\"" + m + "\"")) {
        throw new IllegalArgumentException("fleet manifest " + file + ": adapter '" + e.name()
            + "': " + field + " '" + m + "' is no preset of lt.methods " + presets.root()
            .keySet());
      }
      Config p = presets.getConfig("\"" + m + "\"");
      if (p.hasPath("method.evaluate-only") && !p.getString("method.evaluate-only")
          .isEmpty()) {
        throw new IllegalArgumentException("fleet manifest " + file + ": adapter '" + e.name()
            + "': " + field + " '" + m + "' only evaluates; a migration needs a method that "
            + "makes a target adapter");
      }
    }
  }
}
