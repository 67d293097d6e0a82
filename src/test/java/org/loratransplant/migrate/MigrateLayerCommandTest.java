package org.loratransplant.migrate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.cli.Main;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.LoraConfig;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.model.Projection;
import org.loratransplant.testing.SharedData;

/**
 * {@code jobs/lt migrate-layer} end to end on stories260K (one epoch, a 12-example task): the
 * report has the base, the expert and one row per step, each step's adapter sits on the layer
 * the row names, and a wrong --from is a usage error.
 */
class MigrateLayerCommandTest {
  @TempDir Path tmp;

  @Test
  void walksTheAdapterDownAndReportsEachStep() throws Exception {
    Path model = SharedData.model("stories260K");
    Path adapter = tmp.resolve("expert");
    try (LanguageModel lm = LanguageModel.load(model, Device.cpu())) {
      LoraConfig c = new LoraConfig(4, 8, 0, EnumSet.of(Projection.Q_PROJ, Projection.V_PROJ),
          List.of(4), false, model.toString());
      SplittableRandom rng = new SplittableRandom(3);
      Map<LoraAdapter.Key, LoraAdapter.Matrices> v = new java.util.HashMap<>();
      for (Projection p : c.targetModules()) {
        float[] a = new float[4 * p.inFeatures(lm.config())];
        float[] b = new float[p.outFeatures(lm.config()) * 4];
        for (int i = 0; i < a.length; i++) {
          a[i] = (float) rng.nextGaussian() * 0.2f;
        }
        for (int i = 0; i < b.length; i++) {
          b[i] = (float) rng.nextGaussian() * 0.2f;
        }
        v.put(new LoraAdapter.Key(4, p), new LoraAdapter.Matrices(a, b));
      }
      try (LoraAdapter a = LoraAdapter.of(c, lm.config(), lm.model().manager(), v)) {
        PeftFormat.write(a, adapter);
      }
    }
    Path task = tmp.resolve("t.jsonl");
    StringBuilder sb = new StringBuilder();
    for (int i = 0; i < 12; i++) {
      sb.append("{\"input\": \"True and ").append(i % 2 == 0 ? "True" : "False")
          .append("\", \"target\": \"").append(i % 2 == 0 ? "True" : "False").append("\"}\n");
    }
    Files.writeString(task, sb.toString());
    Path out = tmp.resolve("out");
    int rc = Main.run(new String[] {"migrate-layer", "--model", model.toString(), "--adapter",
        adapter.toString(), "--to", "2", "--out", out.toString(), "--task", task.toString(),
        "--device", "cpu", "--set", "lt.train.epochs=1", "--set", "lt.eval.max-new-tokens=2",
        "--set", "lt.migrate.kl-weight=0.5"});
    assertEquals(0, rc);
    JsonNode r = SharedData.json(out.resolve("migration.json"));
    JsonNode rows = r.get("rows");
    assertEquals(4, rows.size());
    assertEquals("base", rows.get(0).get("system").asText());
    assertEquals(4, rows.get(1).get("layer").asInt());
    for (int k = 1; k <= 2; k++) {
      JsonNode row = rows.get(k + 1);
      assertEquals(4 - k, row.get("layer").asInt());
      assertEquals(rows.get(1).get("parameters").asLong(), row.get("parameters").asLong());
      assertTrue(Double.isFinite(row.get("kl_to_expert").asDouble()));
      LoraConfig written = PeftFormat.readConfig(out.resolve("step-" + k + "-layer-" + (4 - k)));
      assertEquals(List.of(4 - k), written.layersToTransform());
    }
    assertEquals(0, rows.get(1).get("kl_to_expert").asDouble(), 1e-9);
    assertTrue(rows.get(0).get("kl_to_expert").asDouble() > 0);
    assertTrue(Files.readString(out.resolve("migration.md")).contains("| step 2: 3 -> 2 | 2 |"));
    // synthetic data: samples of the expert instead of the task's texts
    Path syn = tmp.resolve("syn");
    assertEquals(0, Main.run(new String[] {"migrate-layer", "--model", model.toString(),
        "--adapter", adapter.toString(), "--to", "3", "--out", syn.toString(), "--task",
        task.toString(), "--device", "cpu", "--set", "lt.train.epochs=1", "--set",
        "lt.eval.max-new-tokens=2", "--set", "lt.migrate.data=synthetic", "--set",
        "lt.migrate.synthetic-samples=8", "--set", "lt.migrate.synthetic-tokens=16"}));
    JsonNode s = SharedData.json(syn.resolve("migration.json"));
    assertEquals("synthetic", s.get("data").asText());
    assertEquals(3, s.get("rows").size());
    // a --from that is not the adapter's layer is a usage error
    int bad = Main.run(new String[] {"migrate-layer", "--model", model.toString(), "--adapter",
        out.resolve("step-1-layer-3").toString(), "--from", "4", "--to", "2", "--out",
        tmp.resolve("bad").toString(), "--task", task.toString(), "--device", "cpu"});
    assertEquals(2, bad);
  }
}
