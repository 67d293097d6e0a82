package org.loratransplant.discriminate;

import java.util.ArrayList;
import java.util.List;
import org.loratransplant.task.TaskExample;

/**
 * One (query, answer) row the discriminator judges. {@code id} breaks score ties when filtering
 * (the pool's sample id; for task rows, the index in their split).
 */
public record Labelled(long id, String query, String answer) {

  public Labelled {
    if (query == null || answer == null) {
      throw new IllegalArgumentException("row " + id + ": query and answer must not be null");
    }
  }

  /** Task examples as rows with ids 0, 1, ... in list order; inputs and targets stripped. */
  public static List<Labelled> fromTask(List<TaskExample> examples) {
    List<Labelled> out = new ArrayList<>(examples.size());
    for (int i = 0; i < examples.size(); i++) {
      TaskExample e = examples.get(i);
      out.add(new Labelled(i, e.input().strip(), e.target().strip()));
    }
    return out;
  }
}
