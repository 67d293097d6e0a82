package org.loratransplant.recipes;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.config.Settings;
import org.loratransplant.pipeline.RunLock;
import org.loratransplant.testing.SharedData;
import org.loratransplant.testing.SparkTestSession;

/**
 * {@code titok} and {@code compare} take their run directory's lock before any work: a second
 * job on a directory in use is refused naming the holder and writes nothing there.
 */
class RunDirectoryLockTest {
  @TempDir Path tmp;

  static String model(String name) {
    return SharedData.model(name).toString();
  }

  static String task() {
    return SharedData.root() + "/data/bbh/bbh/boolean_expressions.json";
  }

  @Test
  void titokAndCompareAreRefusedWhileAnotherJobHoldsTheDirectory() throws Exception {
    SparkSession spark = SparkTestSession.get();
    Path out = tmp.resolve("run");
    Settings titok = Settings.load(Path.of("conf/default.conf"), List.of(
        "lt.titok.out=" + out, "lt.titok.source-model=" + model("stories260K"),
        // Never reached: the lock comes first.
        "lt.titok.source-adapter=" + tmp.resolve("no-adapter"), "lt.titok.expert-conf=",
        "lt.titok.target-model=" + model("llama2xs"), "lt.task.file=" + task()));
    Settings compare = Settings.load(Path.of("conf/default.conf"), List.of(
        "lt.compare.out=" + out, "lt.compare.tasks=[\"" + task() + "\"]",
        "lt.compare.targets=[\"" + model("llama2xs") + "\"]", "lt.compare.seeds=[1]",
        "lt.compare.methods=[vanilla]", "lt.compare.paired=[]",
        "lt.compare.experts-dir=" + tmp.resolve("experts"),
        "lt.titok.source-model=" + model("stories260K"), "lt.task.file=" + task()));
    try (RunLock held = RunLock.acquire(spark, out.toString())) {
      RunLock.HeldException e = assertThrows(RunLock.HeldException.class,
          () -> new TitokJob(spark, titok, false).run("generate"));
      assertTrue(e.getMessage().contains("pid " + held.owner().pid()), e.getMessage());
      assertThrows(RunLock.HeldException.class,
          () -> new CompareJob(spark, compare, false).run());
      try (Stream<Path> files = Files.list(out)) {
        assertEquals(List.of(RunLock.FILE), files.map(p -> p.getFileName().toString())
            .toList(), "nothing but the lock was written");
      }
    }
    // Released: the titok job now gets past the lock (and fails on its missing adapter).
    RuntimeException e = assertThrows(RuntimeException.class,
        () -> new TitokJob(spark, titok, false).run("generate"));
    assertFalse(e instanceof RunLock.HeldException, e.getMessage());
    assertTrue(e.getMessage().contains("no-adapter"), e.getMessage());
    assertFalse(Files.exists(out.resolve(RunLock.FILE)), "the job released its lock");
  }
}
