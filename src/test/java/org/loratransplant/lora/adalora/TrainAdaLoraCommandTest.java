package org.loratransplant.lora.adalora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.cli.Main;
import org.loratransplant.testing.SharedData;

/**
 * {@code jobs/lt train-lora --adalora} writes PEFT's ADALORA layout with init_r from lt.lora.r
 * and target_r from lt.adalora, pruned to the target budget, and {@code evaluate --adapter}
 * runs it.
 */
class TrainAdaLoraCommandTest {
  @TempDir Path tmp;

  @Test
  void trainsWritesAndEvaluatesAnAdaLora() throws Exception {
    Path task = tmp.resolve("t.jsonl");
    StringBuilder sb = new StringBuilder();
    for (int i = 0; i < 20; i++) {
      sb.append("{\"input\": \"not ").append(i % 2 == 0 ? "True" : "False")
          .append("\", \"target\": \"").append(i % 2 == 0 ? "False" : "True").append("\"}\n");
    }
    Files.writeString(task, sb.toString());
    Path out = tmp.resolve("ada");
    String model = SharedData.model("stories260K").toString();
    assertEquals(0, Main.run(new String[] {"train-lora", "--adalora", "--model", model, "--out",
        out.toString(), "--task", task.toString(), "--device", "cpu", "--set", "lt.lora.r=4",
        "--set", "lt.adalora.target-r=2", "--set", "lt.train.epochs=4", "--set",
        "lt.train.batch-size=4"}));
    assertTrue(AdaLoraFormat.isAdaLora(out));
    JsonNode cfg = SharedData.json(out.resolve(AdaLoraFormat.CONFIG_FILE));
    assertEquals(4, cfg.get("init_r").asInt());
    assertEquals(2, cfg.get("target_r").asInt());
    int kept = 0;
    int modules = 0;
    for (JsonNode mask : cfg.get("rank_pattern")) {
      modules++;
      for (JsonNode b : mask) {
        kept += b.asBoolean() ? 1 : 0;
      }
    }
    assertEquals(2 * modules, kept, "the final budget is target_r per module on average");
    assertEquals(0, Main.run(new String[] {"evaluate", "--model", model, "--adapter",
        out.toString(), "--task", task.toString(), "--device", "cpu", "--set",
        "lt.eval.max-new-tokens=2"}));
  }
}
