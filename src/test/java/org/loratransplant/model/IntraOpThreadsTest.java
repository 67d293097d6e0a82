package org.loratransplant.model;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.Test;
import org.loratransplant.testing.SparkTestSession;

/** A Spark task never asks for more intra-op threads than the cores Spark gave it. */
class IntraOpThreadsTest {
  @Test
  void capRule() {
    assertEquals(8, IntraOpThreads.cap(8, 0), "outside a task: every core");
    assertEquals(1, IntraOpThreads.cap(8, 1), "a task with spark.task.cpus = 1");
    assertEquals(2, IntraOpThreads.cap(8, 2));
    assertEquals(2, IntraOpThreads.cap(2, 4), "never more than the machine has");
  }

  @Test
  void busyCoresOfOtherProcessesAreLeftToThem() {
    // busy = cores all processes kept busy; what this process itself ran is not someone else's.
    assertEquals(2, IntraOpThreads.Contention.coresLeft(2, 2.0, 2.0), "only us: both cores");
    assertEquals(1, IntraOpThreads.Contention.coresLeft(2, 2.1, 1.0), "a busy process beside us");
    assertEquals(1, IntraOpThreads.Contention.coresLeft(2, 26, 0.3), "never fewer than one");
    assertEquals(12, IntraOpThreads.Contention.coresLeft(16, 4.2, 0.1));
    assertEquals(2, IntraOpThreads.Contention.coresLeft(2, 0.1, 1.9), "samples differ: never "
        + "above the cores");
  }

  @Test
  void aBusyProcessIsSeenWithinSecondsAndItsEndToo() throws Exception {
    int cores = Runtime.getRuntime().availableProcessors();
    org.junit.jupiter.api.Assumptions.assumeTrue(cores == 2,
        "written for the 2-core CI machine");
    IntraOpThreads.Contention.freeCores(cores); // a first sample
    // Another process already holding a core (a build beside this one) would hide the loop's.
    org.junit.jupiter.api.Assumptions.assumeTrue(cores(2) == 2,
        "both cores must be free before the loop starts");
    Process busy = new ProcessBuilder("sh", "-c", "while :; do :; done").start();
    try {
      assertEquals(1, cores(1), "a shell loop holds a core");
    } finally {
      busy.destroyForcibly().waitFor();
    }
    // The 1-minute load average used before kept the loop for a minute after it ended.
    assertEquals(2, cores(2), "the loop has ended");
  }

  /** freeCores(2) sampled each second until it equals {@code want}, up to 6 s. */
  private static int cores(int want) throws InterruptedException {
    int got = -1;
    for (int i = 0; i < 6 && got != want; i++) {
      Thread.sleep(1100);
      got = IntraOpThreads.Contention.freeCores(2);
    }
    return got;
  }

  @Test
  void insideASparkTaskTheTasksCoresCount() {
    JavaSparkContext sc = JavaSparkContext.fromSparkContext(
        SparkTestSession.get().sparkContext());
    List<Integer> seen = sc.parallelize(List.of(1, 2), 2)
        .map(x -> IntraOpThreads.available()).collect();
    assertEquals(List.of(1, 1), seen, "spark.task.cpus defaults to 1");
  }
}
