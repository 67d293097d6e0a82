package org.loratransplant.recipes;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.config.Settings;
import org.loratransplant.testing.SharedData;
import org.loratransplant.testing.SparkTestSession;

/**
 * conf/compare.conf at its real sizes on one task and target (the README's full comparison is
 * the same job over three tasks and two targets): every seed of the product default beats the
 * vanilla target, and paper TiTok is reported next to it whatever it scores. About ten minutes on
 * 2 cores: {@code mvn -B test -Pslow}.
 */
@Tag("slow")
class CompareSlowTest {
  @TempDir Path tmp;

  @Test
  void theDefaultMethodBeatsVanillaOnEverySeed() {
    String task = SharedData.root() + "/data/bbh/bbh/boolean_expressions.json";
    Settings s = Settings.load(Path.of("conf/compare.conf"), List.of(
        "lt.compare.out=" + tmp.resolve("cmp"),
        "lt.compare.experts-dir=" + tmp.resolve("experts"),
        "lt.compare.tasks=[\"" + task + "\"]",
        "lt.compare.targets=[\"" + SharedData.model("llama2xs") + "\"]",
        "lt.compare.methods=[vanilla, sft, titok, titok-adaptive]",
        "lt.compare.paired=[\"titok-adaptive:titok\"]",
        "lt.titok.source-model=" + SharedData.model("stories260K"),
        "lt.task.file=" + task));
    String report = new CompareJob(SparkTestSession.get(), s, false).run();
    assertTrue(report.contains("titok-adaptive vs titok"), report);
    JsonNode rows = SharedData.json(tmp.resolve("cmp/results.json"));
    double vanillaHigh = Double.NaN;
    for (JsonNode r : rows) {
      if (r.get("method").asText().equals("vanilla")
          && r.get("metric").asText().equals("exact_match")) {
        vanillaHigh = r.get("ci_high").asDouble();
      }
    }
    int seeds = 0;
    for (JsonNode r : rows) {
      if (r.get("method").asText().equals("titok-adaptive")
          && r.get("metric").asText().equals("exact_match")) {
        seeds++;
        assertTrue(r.get("ci_low").asDouble() > vanillaHigh, "seed " + r + " vs vanilla <= "
            + vanillaHigh);
      }
    }
    assertTrue(seeds == 3, "3 seeds of titok-adaptive, got " + seeds);
  }
}
