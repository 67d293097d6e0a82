package org.loratransplant.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.config.Settings;
import org.loratransplant.recipes.TitokJob;
import org.loratransplant.testing.SharedData;
import org.loratransplant.testing.SparkTestSession;

/**
 * The README's default experiment at its real size (expert trained from scratch, M = 120):
 * about two minutes on 2 cores, so it runs only with {@code mvn -B test -Pslow}.
 */
@Tag("slow")
class DefaultExperimentSlowTest {
  @TempDir Path tmp;

  @Test
  void defaultExperimentRunsAndTheTransplantBeatsTheVanillaTarget() {
    Settings s = Settings.load(Path.of("conf/default.conf"), List.of(
        "lt.titok.out=" + tmp.resolve("run"),
        "lt.titok.source-adapter=" + tmp.resolve("expert"),
        "lt.titok.source-model=" + SharedData.model("stories260K"),
        "lt.titok.target-model=" + SharedData.model("llama2xs"),
        "lt.task.file=" + SharedData.root() + "/data/bbh/bbh/boolean_expressions.json"));
    new TitokJob(SparkTestSession.get(), s, false).run("evaluate");
    JsonNode eval = SharedData.json(tmp.resolve("run/evaluation/evaluation.json"));
    JsonNode systems = eval.get("systems");
    assertEquals(3, systems.size());
    JsonNode vanilla = systems.get(0).get("exact_match");
    JsonNode transplanted = systems.get(1).get("exact_match");
    JsonNode expert = systems.get(2).get("exact_match");
    assertEquals(100, expert.get("n").asInt());
    // The expert answers in the task's format; the base model never does.
    assertTrue(expert.get("ci95_lo").asDouble() > vanilla.get("ci95_hi").asDouble(),
        "expert " + expert + " vs vanilla " + vanilla);
    // The README's promise: the transplanted target beats the vanilla one, intervals apart.
    assertTrue(transplanted.get("ci95_lo").asDouble() > vanilla.get("ci95_hi").asDouble(),
        "transplanted " + transplanted + " vs vanilla " + vanilla);
  }
}
