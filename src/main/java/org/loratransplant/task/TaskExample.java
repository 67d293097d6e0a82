package org.loratransplant.task;

import java.util.List;

/**
 * One example of a task: the input, the reference answer, and, for multiple choice (MMLU), the
 * answer options the target is one of.
 */
public record TaskExample(String input, String target, List<String> choices)
    implements java.io.Serializable {
  public TaskExample {
    choices = List.copyOf(choices);
  }

  public TaskExample(String input, String target) {
    this(input, target, List.of());
  }
}
