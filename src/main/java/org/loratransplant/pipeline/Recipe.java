package org.loratransplant.pipeline;

import java.util.List;

/**
 * A method as an ordered list of stages (TiTok: generate, score, select, align, train,
 * evaluate). A recipe says <em>what</em> runs; the stages say how; the runner says whether.
 */
public record Recipe(String name, List<Stage> stages) {
  public Recipe {
    stages = List.copyOf(stages);
    if (stages.isEmpty()) {
      throw new IllegalArgumentException("recipe " + name + " has no stages");
    }
  }

  /** The stage names in order. */
  public List<String> stageNames() {
    return stages.stream().map(Stage::name).toList();
  }
}
