package org.loratransplant.pipeline;

import org.apache.spark.TaskContext;

/**
 * Makes the first attempt of one partition of a stage fail, to prove that Spark's task retries
 * reproduce the same rows. Enabled only by the system property {@code lt.fail-once} (set to a
 * stage name, e.g. {@code generate}); a no-op in normal runs.
 */
public final class FaultInjection {
  private FaultInjection() {}

  public static void maybeFail(String stage) {
    String target = System.getProperty("lt.fail-once");
    TaskContext tc = TaskContext.get();
    if (stage.equals(target) && tc != null && tc.partitionId() == 0
        && tc.attemptNumber() == 0) {
      throw new IllegalStateException("injected failure in " + stage + " (lt.fail-once), "
          + "partition 0, attempt 0");
    }
  }
}
