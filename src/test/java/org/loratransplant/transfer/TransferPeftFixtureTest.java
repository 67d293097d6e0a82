package org.loratransplant.transfer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.loratransplant.cli.Main;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.testing.SharedData;

/**
 * An adapter written by {@code jobs/lt transfer} (cross-lora, stories260K -> llama2xs) loaded by
 * real PEFT: {@code expected.json} holds the per-token log-probs that transformers + peft compute
 * with it ({@code make_fixture.py}); our runtime must match them within 1e-4.
 *
 * <p>Regenerate (both steps, in order): {@code mvn -B -o test -Dtest=TransferPeftFixtureTest
 * -Dlt.fixtures.write=true}, then, in a venv with torch, transformers and peft,
 * {@code python src/test/resources/fixtures/transfer/make_fixture.py}.
 */
class TransferPeftFixtureTest {
  static final Path DIR = Path.of("src/test/resources/fixtures/transfer");
  static final Path SOURCE = DIR.resolve("source-lora");
  static final Path ADAPTER = DIR.resolve("cross-lora-llama2xs");

  @Test
  @EnabledIfSystemProperty(named = "lt.fixtures.write", matches = "true")
  void writeFixtureAdapters() {
    RandomLora.write(SOURCE, SharedData.model("stories260K"), 4, 8, 2024);
    assertEquals(0, Main.run(new String[] {"transfer", "--method", "cross-lora",
        "--source-model", "../shared/models/stories260K", "--adapter", SOURCE.toString(),
        "--target-model", "../shared/models/llama2xs", "--out", ADAPTER.toString(),
        "--similarity-threshold", "0"}));
  }

  @Test
  void ourRuntimeMatchesPeftOnTheTransferredAdapter() {
    JsonNode expected = SharedData.json(DIR.resolve("expected.json"));
    int[] ids = SharedData.ints(expected.get("input_ids"));
    double[] withAdapter = SharedData.doubles(expected.get("adapter_logprobs"));
    double[] base = SharedData.doubles(expected.get("base_logprobs"));
    try (LanguageModel lm = LanguageModel.load(SharedData.model("llama2xs"), Device.cpu());
        LoraAdapter adapter = PeftFormat.read(ADAPTER, lm.config(), lm.model().manager())) {
      float[] got = lm.logprobs(List.of(new int[] {ids[0]}),
          List.of(Arrays.copyOfRange(ids, 1, ids.length)), adapter, 1).get(0);
      float[] gotBase = lm.logprobs(List.of(new int[] {ids[0]}),
          List.of(Arrays.copyOfRange(ids, 1, ids.length)), null, 1).get(0);
      double maxShift = 0;
      for (int i = 0; i < withAdapter.length; i++) {
        assertEquals(withAdapter[i], got[i], 1e-4, "adapter log-prob of token " + (i + 1));
        assertEquals(base[i], gotBase[i], 1e-4, "base log-prob of token " + (i + 1));
        maxShift = Math.max(maxShift, Math.abs(withAdapter[i] - base[i]));
      }
      // The comparison means something only if the adapter moves the log-probs well past 1e-4.
      assertTrue(maxShift > 1e-2, "the transferred adapter barely changes the model: " + maxShift);
    }
  }
}
