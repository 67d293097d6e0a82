package org.loratransplant.task;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** A named list of examples. */
public record Task(String name, List<TaskExample> examples) {

  public Task {
    examples = List.copyOf(examples);
  }

  /**
   * The closed set of answers, or an empty list when answers are free-form. Multiple-choice
   * examples give their choices; otherwise the targets form a closed set when there are at most
   * 20 distinct ones and each occurs at least 3 times (True/False, Yes/No, valid/invalid, (A)-(E)
   * options), which rules out arithmetic results and sorted word lists.
   */
  public List<String> answerSet() {
    if (!examples.isEmpty() && !examples.get(0).choices().isEmpty()) {
      return examples.get(0).choices();
    }
    Map<String, Integer> counts = new LinkedHashMap<>();
    for (TaskExample e : examples) {
      counts.merge(e.target().strip(), 1, Integer::sum);
    }
    if (counts.size() > 20 || counts.size() < 2
        || counts.values().stream().anyMatch(c -> c < 3)) {
      return List.of();
    }
    List<String> out = new ArrayList<>(counts.keySet());
    out.sort(null);
    return out;
  }
}
