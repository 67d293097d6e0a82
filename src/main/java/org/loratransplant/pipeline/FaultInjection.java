package org.loratransplant.pipeline;

import java.util.Arrays;
import org.apache.spark.TaskContext;

/**
 * Faults for tests, each enabled only by a system property and a no-op in normal runs:
 * <ul>
 *   <li>{@code lt.fail-once=STAGE} (e.g. {@code generate}): the first attempt of partition 0 of
 *       the stage fails, to prove that Spark's task retries reproduce the same rows;</li>
 *   <li>{@code lt.inject-non-finite=ID,ID,...}: the score stage sees a NaN log-prob for these
 *       sample ids, as a model that overflows on them would give;</li>
 *   <li>{@code lt.fail-after-step=N}: training throws right after step N (and its checkpoint),
 *       as a driver that dies there; {@code lt.stall-after-step=N} makes it wait there forever
 *       instead, for a test that kills the JVM with SIGKILL.</li>
 * </ul>
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

  /** Whether the score stage should see a non-finite log-prob for this sample. */
  public static boolean nonFiniteScore(long sampleId) {
    String ids = System.getProperty("lt.inject-non-finite");
    return ids != null && !ids.isBlank() && Arrays.stream(ids.split(","))
        .anyMatch(id -> Long.parseLong(id.strip()) == sampleId);
  }

  /** Called by training after each optimizer step (and its checkpoint), with the steps done. */
  public static void afterTrainStep(int done) {
    if (done == Integer.getInteger("lt.fail-after-step", -1)) {
      throw new IllegalStateException("injected failure after training step " + done
          + " (lt.fail-after-step)");
    }
    if (done == Integer.getInteger("lt.stall-after-step", -1)) {
      System.err.println("lt.stall-after-step: stalled after training step " + done);
      System.err.flush();
      while (true) {
        try {
          Thread.sleep(60_000);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new IllegalStateException("interrupted while stalled (lt.stall-after-step)", e);
        }
      }
    }
  }
}
