package org.loratransplant.lora.adalora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.lora.LoraAdapter.Key;
import org.loratransplant.model.Adapter;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.model.Projection;
import org.loratransplant.testing.SharedData;

/**
 * A PEFT-written AdaLoRA adapter (src/test/resources/fixtures/adalora/make_fixture.py: peft
 * 0.21 on stories260K, random non-zero triplets pruned by a rank_pattern that differs per module
 * and leaves one module empty) gives, in our runtime, the per-token log-probs real peft gave.
 */
class AdaLoraFormatTest {
  static final Path DIR = Path.of("src/test/resources/fixtures/adalora");
  @TempDir Path tmp;

  static float[] ours(LanguageModel lm, Adapter adapter, int[] ids) {
    return lm.logprobs(List.of(new int[] {ids[0]}), List.of(Arrays.copyOfRange(ids, 1,
        ids.length)), adapter, 1).get(0);
  }

  @Test
  void peftWrittenAdapterGivesPeftsLogprobs() {
    JsonNode expected = SharedData.json(DIR.resolve("expected.json"));
    int[] ids = SharedData.ints(expected.get("ids"));
    double[] want = SharedData.doubles(expected.get("token_logprobs"));
    double[] wantBase = SharedData.doubles(expected.get("base_token_logprobs"));
    try (LanguageModel lm = LanguageModel.load(SharedData.model("stories260K"), Device.cpu());
        AdaLoraAdapter a = AdaLoraFormat.read(DIR.resolve("adapter"), lm.config(),
            lm.model().manager())) {
      float[] base = ours(lm, null, ids);
      float[] got = ours(lm, a, ids);
      double moved = 0;
      for (int i = 0; i < want.length; i++) {
        assertEquals(wantBase[i], base[i], 1e-4, "base log-prob of token " + (i + 1));
        assertEquals(want[i], got[i], 1e-4, "adapted log-prob of token " + (i + 1));
        moved = Math.max(moved, Math.abs(want[i] - wantBase[i]));
      }
      assertTrue(moved > 0.5, "the fixture must move the log-probs, moved " + moved);
      // the pattern as written: layer 1 down_proj keeps nothing, layer 3 v_proj one slot (4)
      assertEquals(0, a.modules().get(new Key(1, Projection.DOWN_PROJ)).rank());
      boolean[] v3 = a.modules().get(new Key(3, Projection.V_PROJ)).kept();
      assertArrayEquals(new boolean[] {false, false, false, false, true, false}, v3);
      assertEquals(6f, a.modules().get(new Key(3, Projection.V_PROJ)).ranknum());
      // the low-rank factors the fused decoder runs (or folds in) equal the factored forward
      try (ai.djl.ndarray.NDManager m = lm.model().manager().newSubManager();
          org.loratransplant.model.Adapter.LowRank f = a.lowRank(3, Projection.DOWN_PROJ)) {
        ai.djl.ndarray.NDArray x = m.randomNormal(new ai.djl.ndarray.types.Shape(3, 172));
        assertArrayEquals(a.delta(3, Projection.DOWN_PROJ, x, false).toFloatArray(),
            x.matMul(f.aT()).matMul(f.bT()).toFloatArray(), 1e-4f);
      }
    }
  }

  @Test
  void writtenAdapterReadsBackToTheSameOutputsAndLayout() {
    JsonNode expected = SharedData.json(DIR.resolve("expected.json"));
    int[] ids = SharedData.ints(expected.get("ids"));
    try (LanguageModel lm = LanguageModel.load(SharedData.model("stories260K"), Device.cpu());
        AdaLoraAdapter a = AdaLoraFormat.read(DIR.resolve("adapter"), lm.config(),
            lm.model().manager())) {
      AdaLoraFormat.write(a, tmp.resolve("copy"));
      try (AdaLoraAdapter b = AdaLoraFormat.read(tmp.resolve("copy"), lm.config(),
          lm.model().manager())) {
        assertArrayEquals(ours(lm, a, ids), ours(lm, b, ids), 1e-6f);
        assertEquals(a.keptParameterCount(), b.keptParameterCount());
      }
      assertTrue(AdaLoraFormat.isAdaLora(tmp.resolve("copy")));
      JsonNode cfg = SharedData.json(tmp.resolve("copy").resolve(AdaLoraFormat.CONFIG_FILE));
      assertEquals("ADALORA", cfg.get("peft_type").asText());
      assertEquals(6, cfg.get("rank_pattern").get("model.layers.3.self_attn.v_proj.lora_E")
          .size());
    }
  }
}
