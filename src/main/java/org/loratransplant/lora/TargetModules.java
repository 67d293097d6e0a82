package org.loratransplant.lora;

import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.loratransplant.model.Projection;

/**
 * {@code target_modules} as PEFT matches a list of them ({@code check_target_module_exists}): an
 * entry matches a module when it equals the module's full name ({@code
 * model.layers.0.self_attn.k_proj}) or the full name ends with {@code "." + entry}; the string
 * {@code "all-linear"} means every linear layer but the output head. An adapter saved after
 * training with {@code "all-linear"} lists full names (or suffixes), so both forms are accepted.
 * Entries that name a layer must together adapt the same projections in each named layer, which
 * is what {@link LoraConfig} (projections x layers) represents.
 */
final class TargetModules {
  /** A layer number inside a module name, e.g. {@code 3} in {@code layers.3.mlp.up_proj}. */
  private static final Pattern LAYER = Pattern.compile("(?:^|\\.)(\\d+)\\.(?:self_attn|mlp)\\.");
  /** Stands for "any layer": no entry can contain it, so a match through it is layer-free. */
  private static final String ANY_LAYER = "<any>";

  private TargetModules() {}

  /**
   * @param projections the adapted projections
   * @param layers the layers named by the entries; empty when every entry is layer-free
   */
  record Resolved(Set<Projection> projections, List<Integer> layers) {}

  static Resolved resolve(List<String> entries, String where) {
    Set<Projection> everyLayer = EnumSet.noneOf(Projection.class);
    Map<Integer, Set<Projection>> perLayer = new TreeMap<>();
    for (String e : entries) {
      if (e.equals("all-linear")) {
        everyLayer.addAll(EnumSet.allOf(Projection.class));
        continue;
      }
      boolean found = false;
      for (Projection p : Projection.values()) {
        if (matches(e, p.keyPrefix(0).replaceFirst("\\.0\\.", "." + ANY_LAYER + "."))) {
          everyLayer.add(p);
          found = true;
        }
      }
      Matcher m = LAYER.matcher(e);
      if (!found && m.find()) {
        int layer = Integer.parseInt(m.group(1));
        for (Projection p : Projection.values()) {
          if (matches(e, p.keyPrefix(layer))) {
            perLayer.computeIfAbsent(layer, k -> EnumSet.noneOf(Projection.class)).add(p);
            found = true;
          }
        }
      }
      if (!found) {
        throw new IllegalArgumentException(where + "target module '" + e + "' is not a "
            + "projection of a Llama-family decoder (q/k/v/o/gate/up/down_proj, as a module "
            + "name, a suffix such as self_attn.q_proj or a full name such as "
            + "model.layers.0.self_attn.q_proj)");
      }
    }
    if (perLayer.isEmpty()) {
      return new Resolved(everyLayer, List.of());
    }
    // Layer-specific entries: the projections of the named layers (plus the layer-free ones)
    // must be the same in every named layer; the other layers get nothing.
    Set<Projection> first = null;
    for (Map.Entry<Integer, Set<Projection>> e : perLayer.entrySet()) {
      Set<Projection> s = EnumSet.copyOf(e.getValue());
      s.addAll(everyLayer);
      if (first == null) {
        first = s;
      } else if (!first.equals(s)) {
        throw new IllegalArgumentException(where + "target_modules adapt " + first + " in one "
            + "layer but " + s + " in layer " + e.getKey() + "; different modules per layer "
            + "are not supported");
      }
    }
    if (!everyLayer.isEmpty()) {
      throw new IllegalArgumentException(where + "target_modules mix layer-free names "
          + everyLayer + " with names of single layers " + perLayer.keySet() + "; the "
          + "layer-free ones adapt every layer, the others only theirs, which is not supported");
    }
    return new Resolved(first, new ArrayList<>(perLayer.keySet()));
  }

  private static boolean matches(String entry, String fullName) {
    return fullName.equals(entry) || fullName.endsWith("." + entry);
  }
}
