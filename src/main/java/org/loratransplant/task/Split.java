package org.loratransplant.task;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * A seeded, reproducible train/test split: a Fisher-Yates shuffle driven by SplittableRandom
 * (whose sequence is specified, so the split is the same on every JVM), the first
 * {@code round(n x testFraction)} examples of the shuffle are the test split.
 */
public record Split(List<TaskExample> train, List<TaskExample> test) {

  public static Split of(Task task, double testFraction, long seed) {
    if (!(testFraction > 0 && testFraction < 1)) {
      throw new IllegalArgumentException("test fraction must be in (0, 1), got " + testFraction);
    }
    List<TaskExample> all = new ArrayList<>(task.examples());
    SplittableRandom rng = new SplittableRandom(seed);
    for (int i = all.size() - 1; i > 0; i--) {
      int j = rng.nextInt(i + 1);
      TaskExample t = all.get(i);
      all.set(i, all.get(j));
      all.set(j, t);
    }
    int nTest = (int) Math.round(all.size() * testFraction);
    if (nTest == 0 || nTest == all.size()) {
      throw new IllegalArgumentException("task " + task.name() + " has " + all.size()
          + " examples: too few to split with test fraction " + testFraction);
    }
    return new Split(List.copyOf(all.subList(nTest, all.size())),
        List.copyOf(all.subList(0, nTest)));
  }

  /** The first n training examples: TiTok's seed examples for the few-shot prompt. */
  public List<TaskExample> seedExamples(int n) {
    if (n < 1) {
      throw new IllegalArgumentException("at least one seed example is needed, got " + n);
    }
    if (n > train.size()) {
      throw new IllegalArgumentException(n + " seed examples requested but the training split "
          + "has " + train.size());
    }
    return train.subList(0, n);
  }
}
