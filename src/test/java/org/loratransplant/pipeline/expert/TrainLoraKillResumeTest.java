package org.loratransplant.pipeline.expert;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.cli.Main;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.testing.Adapters;
import org.loratransplant.testing.SharedData;

/**
 * The real case of issue 13's first finding: {@code train-lora} killed with SIGKILL in one JVM
 * and rerun in another resumes from its checkpoint (the fingerprint once hashed a set whose order
 * changed per JVM, and the rerun was refused) and ends with the uninterrupted run's adapter.
 */
class TrainLoraKillResumeTest {
  @TempDir Path tmp;

  private List<String> args(Path out) {
    return List.of("train-lora", "--model", SharedData.model("stories260K").toString(), "--out",
        out.toString(), "--conf", "conf/expert-boolean.conf", "--set", "lt.train.epochs=1",
        // 25 training examples: 7 steps, checkpoints at 2, 4 and 6
        "--set", "lt.task.test-fraction=0.9", "--set", "lt.train.checkpoint-every=2", "--set",
        "lt.task.file=" + SharedData.root() + "/data/bbh/bbh/boolean_expressions.json");
  }

  @Test
  void trainLoraKilledInOneJvmResumesInAnother() throws Exception {
    Path out = tmp.resolve("expert");
    // Bit-for-bit equality needs the same thread counts in both runs (see IntraOpThreads): the
    // adaptive rule follows the machine's load, which moved results by ~3e-5 relative in CI.
    System.setProperty("lt.threads.adaptive", "false");
    try {
      killAndResume(out);
    } finally {
      System.clearProperty("lt.threads.adaptive");
    }
  }

  private void killAndResume(Path out) throws Exception {
    // A child JVM trains and stalls after step 4 (checkpoints at 2 and 4), then is SIGKILLed.
    List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin",
        "java").toString(), "-Xmx1g", "-Dlt.stall-after-step=4", "-Dlt.threads.adaptive=false"));
    for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
      if (a.startsWith("--add-opens") || a.startsWith("-Dai.djl") || a.startsWith("-Djdk.")
          || a.startsWith("-Dio.netty") || a.startsWith("-Dlt.shared")) {
        cmd.add(a);
      }
    }
    cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), Main.class.getName()));
    cmd.addAll(args(out));
    Process child = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    StringBuilder log = new StringBuilder();
    CompletableFuture<Boolean> stalled = CompletableFuture.supplyAsync(() -> {
      try (BufferedReader r = new BufferedReader(new InputStreamReader(child.getInputStream(),
          StandardCharsets.UTF_8))) {
        for (String line; (line = r.readLine()) != null; ) {
          log.append(line).append('\n');
          if (line.contains("stalled after training step 4")) {
            return true;
          }
        }
        return false;
      } catch (java.io.IOException e) {
        return false;
      }
    });
    try {
      assertTrue(stalled.get(180, TimeUnit.SECONDS), "the child reached step 4:\n" + log);
    } finally {
      child.destroyForcibly(); // SIGKILL: no shutdown hook, no cleanup
      child.waitFor(30, TimeUnit.SECONDS);
    }
    assertFalse(Files.exists(out), "killed before writing the adapter");
    Path checkpoints;
    try (Stream<Path> s = Files.list(tmp)) {
      checkpoints = s.filter(p -> p.getFileName().toString().startsWith(".expert.checkpoints-"))
          .findFirst().orElseThrow();
    }
    assertTrue(Files.isRegularFile(checkpoints.resolve("checkpoint-00000004/trainer_state.json")));

    // This JVM reruns the same command: it resumes at step 4 and cleans up.
    assertEquals(0, Main.run(args(out).toArray(new String[0])));
    assertEquals(4, SharedData.json(out.resolve(ExpertTraining.SUMMARY_FILE))
        .get("resumed_from_step").asInt());
    assertEquals(7, SharedData.json(out.resolve(ExpertTraining.SUMMARY_FILE)).get("steps")
        .asInt());
    assertFalse(Files.exists(checkpoints), "checkpoints removed after success");

    // ... and ends where an uninterrupted run ends.
    Path whole = tmp.resolve("whole");
    assertEquals(0, Main.run(args(whole).toArray(new String[0])));
    assertEquals(0, SharedData.json(whole.resolve(ExpertTraining.SUMMARY_FILE))
        .get("resumed_from_step").asInt());
    Adapters.assertSameWeights(whole.resolve(PeftFormat.WEIGHTS_FILE),
        out.resolve(PeftFormat.WEIGHTS_FILE));
  }
}
