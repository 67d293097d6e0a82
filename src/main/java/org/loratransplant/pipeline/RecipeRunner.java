package org.loratransplant.pipeline;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The only place that decides whether a stage runs: a stage whose outputs are all complete for
 * its key is skipped (its stored figures are returned again, marked {@code skipped}); otherwise it
 * runs, its outputs are committed with {@link #PENDING} (each by the store's write-to-temporary,
 * rename, mark) and re-marked with the key only when the whole stage is done, so a run killed in
 * between redoes the stage. The figures are stored beside the outputs ({@code _stats/<stage>.json}
 * in the stage's store).
 */
public final class RecipeRunner {
  private static final Logger LOG = LoggerFactory.getLogger(RecipeRunner.class);
  /** The marker of an output whose stage has not finished yet. */
  public static final String PENDING = "pending";
  private static final ObjectMapper JSON = new ObjectMapper();

  private final boolean force;

  /** With {@code force} every stage runs, complete or not. */
  public RecipeRunner(boolean force) {
    this.force = force;
  }

  /** Whether every output of {@code stage} is complete for its key. */
  public static boolean complete(Stage stage) {
    return stage.outputs().stream()
        .allMatch(o -> stage.key().equals(stage.store().completedHash(o)));
  }

  /**
   * Runs the recipe's stages in order, up to and including {@code lastStage} (null: all). Returns
   * each stage's figures by name.
   */
  public Map<String, ObjectNode> run(Recipe recipe, String lastStage) {
    if (lastStage != null && !recipe.stageNames().contains(lastStage)) {
      throw new IllegalArgumentException("unknown stage '" + lastStage + "' (" + recipe.name()
          + " has " + recipe.stageNames() + ")");
    }
    Map<String, ObjectNode> stats = new LinkedHashMap<>();
    List<Stage> stages = recipe.stages();
    for (int i = 0; i < stages.size(); i++) {
      Stage st = stages.get(i);
      stats.put(st.name(), run(st, recipe.name(), i + 1, stages.size()));
      if (st.name().equals(lastStage)) {
        break;
      }
    }
    return stats;
  }

  /** Runs one stage unless it is complete; returns its figures. */
  public ObjectNode run(Stage st, String recipe, int index, int count) {
    String where = recipe + " " + index + "/" + count + " " + st.name();
    if (!force && complete(st)) {
      ObjectNode stored = storedStats(st);
      stored.put("skipped", true);
      LOG.info("{}: complete for these settings, skipped", where);
      return stored;
    }
    LOG.info("{}: running", where);
    long t0 = System.nanoTime();
    ObjectNode stats = st.run();
    stats.put("seconds", (System.nanoTime() - t0) / 1e9);
    if (stats.has("tokens") && stats.get("seconds").asDouble() > 0) {
      stats.put("tokens_per_second", stats.get("tokens").asDouble()
          / stats.get("seconds").asDouble());
    }
    st.store().writeText(statsName(st), stats.toPrettyString());
    st.outputs().forEach(o -> st.store().mark(o, st.key()));
    LOG.info("{}: done in {} s", where, String.format("%.1f", stats.get("seconds").asDouble()));
    return stats.deepCopy();
  }

  private static String statsName(Stage st) {
    return "_stats/" + st.name() + ".json";
  }

  private static ObjectNode storedStats(Stage st) {
    String text = st.store().readText(statsName(st));
    if (text != null) {
      try {
        JsonNode n = JSON.readTree(text);
        if (n instanceof ObjectNode o) {
          return o;
        }
      } catch (java.io.IOException e) {
        LOG.warn("unreadable {}: {}", statsName(st), e.getMessage());
      }
    }
    return JSON.createObjectNode();
  }
}
