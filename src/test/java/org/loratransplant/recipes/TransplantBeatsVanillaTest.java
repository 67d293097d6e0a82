package org.loratransplant.recipes;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.config.Settings;
import org.loratransplant.testing.SharedData;
import org.loratransplant.testing.SparkTestSession;

/**
 * The product's promise on a small run: default.conf's method (class-balanced samples, word-level
 * selection with the answer's newline and eos kept, k % tuned on a validation split) transplants
 * a stories260K expert to llama2xs so that the target answers where the vanilla target never
 * does: exact match on the 100 held-out examples with 95% intervals apart.
 */
class TransplantBeatsVanillaTest {
  @TempDir Path tmp;

  @Test
  void theTransplantedTargetBeatsTheVanillaTarget() {
    Settings s = Settings.load(Path.of("conf/default.conf"), List.of(
        "lt.titok.out=" + tmp.resolve("run"),
        "lt.titok.source-adapter=" + tmp.resolve("expert"),
        "lt.titok.source-model=" + SharedData.model("stories260K"),
        "lt.titok.target-model=" + SharedData.model("llama2xs"),
        "lt.titok.samples=40",
        "lt.titok.partitions=2",
        "lt.train.epochs=4",
        "lt.method.tune.k-percent=[70]",
        "lt.eval.max-new-tokens=6",
        "lt.task.file=" + SharedData.root() + "/data/bbh/bbh/boolean_expressions.json"));
    new TitokJob(SparkTestSession.get(), s, false).run("evaluate");
    JsonNode systems = SharedData.json(tmp.resolve("run/evaluation/evaluation.json"))
        .get("systems");
    JsonNode vanilla = systems.get(0).get("exact_match");
    JsonNode transplanted = systems.get(1).get("exact_match");
    assertEquals(100, transplanted.get("n").asInt());
    assertEquals(0.0, vanilla.get("value").asDouble(), "the bare target never answers");
    assertTrue(transplanted.get("ci95_lo").asDouble() > vanilla.get("ci95_hi").asDouble(),
        "transplanted " + transplanted + " vs vanilla " + vanilla);
    // The tuning tried 70 % and 100 % on the validation split, never the test split.
    JsonNode tuning = SharedData.json(tmp.resolve("run/tuning/tuning.json"));
    assertEquals(2, tuning.get("candidates").size());
    assertEquals(45, tuning.get("validation_examples").asInt(), "30% of the 150 training rows");
  }
}
