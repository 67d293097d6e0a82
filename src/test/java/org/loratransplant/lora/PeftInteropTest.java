package org.loratransplant.lora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.loratransplant.model.HuggingFaceParityTest.assertClose;

import ai.djl.Device;
import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.model.Adapter;
import org.loratransplant.model.GenerationParams;
import org.loratransplant.model.HuggingFaceParityTest;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.safetensors.SafeTensorsFile;
import org.loratransplant.safetensors.TensorInfo;
import org.loratransplant.testing.SharedData;

/** Our LoRA against a real adapter written by peft 0.12.0 and its expected outputs. */
class PeftInteropTest {
  private static final Path FIXTURE = SharedData.hfReference("peft-tiny-llama3-lora");
  private static final Path BASE = SharedData.hfReference("tiny-llama3");

  @Test
  void reproducesPeftWithAdapterActiveAndMerged() {
    JsonNode expected = SharedData.json(FIXTURE.resolve("expected.json"));
    try (LanguageModel lm = LanguageModel.load(BASE, Device.cpu());
        LoraAdapter adapter = PeftFormat.read(FIXTURE, lm.config(), lm.model().manager())) {
      assertEquals(2.0, adapter.config().scaling());
      checkCases(lm, adapter, expected.get("active"), "active");
      adapter.merge(lm.model());
      checkCases(lm, null, expected.get("merged"), "merged");
      adapter.unmerge(lm.model());
      // Unmerged, the base model is back: its own HF fixture holds.
      JsonNode base = SharedData.json(BASE.resolve("expected.json")).get("cases").get(0);
      float[] logits = HuggingFaceParityTest.lastLogitsAndHidden(lm,
          SharedData.ints(base.get("input_ids")))[0];
      double[] want = SharedData.doubles(base.get("last_logits"));
      for (int v = 0; v < want.length; v++) {
        assertClose(want[v], logits[v], 1e-4, "base logit " + v + " after unmerge");
      }
    }
  }

  private static void checkCases(LanguageModel lm, Adapter adapter, JsonNode cases, String what) {
    int n = 0;
    for (JsonNode c : cases) {
      String where = what + " case " + n++;
      int[] ids = SharedData.ints(c.get("input_ids"));
      float[] logits = HuggingFaceParityTest.lastLogitsAndHidden(lm, ids, adapter)[0];
      double[] want = SharedData.doubles(c.get("last_logits"));
      for (int v = 0; v < want.length; v++) {
        assertClose(want[v], logits[v], 1e-4, where + " logit " + v);
      }
      float[] lp = lm.logprobs(List.of(new int[] {ids[0]}),
          List.of(Arrays.copyOfRange(ids, 1, ids.length)), adapter, 1).get(0);
      double[] wantLp = SharedData.doubles(c.get("token_logprobs"));
      for (int i = 0; i < wantLp.length; i++) {
        assertClose(wantLp[i], lp[i], 1e-4, where + " logprob " + i);
      }
      int[] greedy = lm.generate(List.of(ids), new long[] {0},
          GenerationParams.greedy(10, new int[0]), adapter, 1).get(0).tokens();
      assertArrayEquals(SharedData.ints(c.get("greedy_new_tokens")), greedy, where + " greedy");
    }
  }

  @Test
  void savedAdapterHasPeftsKeysShapesDtypeAndConfigAndReloadsBitExactly(@TempDir Path tmp)
      throws Exception {
    try (LanguageModel lm = LanguageModel.load(BASE, Device.cpu());
        LoraAdapter adapter = PeftFormat.read(FIXTURE, lm.config(), lm.model().manager())) {
      Path out = tmp.resolve("saved");
      PeftFormat.write(adapter, out);
      assertEquals(describe(FIXTURE.resolve(PeftFormat.WEIGHTS_FILE)),
          describe(out.resolve(PeftFormat.WEIGHTS_FILE)));
      // Same fields and values as PEFT wrote; target_modules is a set in PEFT (any order).
      JsonNode want = SharedData.json(FIXTURE.resolve(PeftFormat.CONFIG_FILE));
      JsonNode got = SharedData.json(out.resolve(PeftFormat.CONFIG_FILE));
      List<String> wantFields = new ArrayList<>();
      want.fieldNames().forEachRemaining(wantFields::add);
      List<String> gotFields = new ArrayList<>();
      got.fieldNames().forEachRemaining(gotFields::add);
      assertEquals(wantFields, gotFields);
      for (String f : wantFields) {
        if (f.equals("target_modules")) {
          assertEquals(sorted(want.get(f)), sorted(got.get(f)));
        } else {
          assertEquals(want.get(f), got.get(f), f);
        }
      }
      // The weights are PEFT's exactly: same bytes per tensor.
      try (SafeTensorsFile a = SafeTensorsFile.open(FIXTURE.resolve(PeftFormat.WEIGHTS_FILE));
          SafeTensorsFile b = SafeTensorsFile.open(out.resolve(PeftFormat.WEIGHTS_FILE))) {
        for (TensorInfo t : a.tensors()) {
          assertArrayEquals(a.readBytes(t.name()), b.readBytes(t.name()), t.name());
        }
        assertEquals(a.metadata(), b.metadata());
      }
      // Reload and save again: byte-identical files.
      try (LoraAdapter again = PeftFormat.read(out, lm.config(), lm.model().manager())) {
        Path out2 = tmp.resolve("again");
        PeftFormat.write(again, out2);
        for (String f : new String[] {PeftFormat.WEIGHTS_FILE, PeftFormat.CONFIG_FILE}) {
          assertArrayEquals(Files.readAllBytes(out.resolve(f)), Files.readAllBytes(out2.resolve(f)),
              f);
        }
      }
      // PEFT's save writes the same weight file bytes we do (layout and header).
      assertArrayEquals(Files.readAllBytes(FIXTURE.resolve(PeftFormat.WEIGHTS_FILE)),
          Files.readAllBytes(out.resolve(PeftFormat.WEIGHTS_FILE)));
    }
  }

  private static List<String> sorted(JsonNode arr) {
    List<String> s = new ArrayList<>();
    arr.forEach(n -> s.add(n.asText()));
    s.sort(null);
    return s;
  }

  private static Map<String, String> describe(Path file) {
    Map<String, String> m = new TreeMap<>();
    try (SafeTensorsFile f = SafeTensorsFile.open(file)) {
      for (TensorInfo t : f.tensors()) {
        m.put(t.name(), t.dtype() + Arrays.toString(t.dims()));
      }
    }
    return m;
  }

  @Test
  void rejectsAdaptersThatDoNotFitTheBase(@TempDir Path tmp) throws Exception {
    try (LanguageModel other = LanguageModel.load(SharedData.model("stories260K"), Device.cpu())) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> PeftFormat.read(FIXTURE, other.config(), other.model().manager()));
      assertTrue(e.getMessage().contains("lora_A.weight") || e.getMessage().contains("lora_B"),
          e.getMessage());
      assertTrue(e.getMessage().contains("different base model"), e.getMessage());
    }
    // An unknown module in target_modules.
    Path bad = tmp.resolve("bad");
    Files.createDirectories(bad);
    Files.copy(FIXTURE.resolve(PeftFormat.WEIGHTS_FILE), bad.resolve(PeftFormat.WEIGHTS_FILE));
    Files.writeString(bad.resolve(PeftFormat.CONFIG_FILE),
        SharedData.text(FIXTURE.resolve(PeftFormat.CONFIG_FILE)).replace("\"down_proj\"",
            "\"c_attn\""));
    try (LanguageModel lm = LanguageModel.load(BASE, Device.cpu())) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> PeftFormat.read(bad, lm.config(), lm.model().manager()));
      assertTrue(e.getMessage().contains("c_attn") && e.getMessage().contains("adapter_config"),
          e.getMessage());
      // Drop down_proj from the config: its tensors are then unknown to it.
      Files.writeString(bad.resolve(PeftFormat.CONFIG_FILE),
          SharedData.text(FIXTURE.resolve(PeftFormat.CONFIG_FILE)).replace(",\n    \"down_proj\"",
              "").replace("\"down_proj\",\n    ", "").replace("\"down_proj\"", "\"q_proj\""));
      e = assertThrows(IllegalArgumentException.class,
          () -> PeftFormat.read(bad, lm.config(), lm.model().manager()));
      assertTrue(e.getMessage().contains("down_proj.lora_"), e.getMessage());
    }
  }

  @Test
  void rejectsAnAdapterHoldingANan(@TempDir Path tmp) throws Exception {
    Path bad = tmp.resolve("nan");
    Files.createDirectories(bad);
    Files.copy(FIXTURE.resolve(PeftFormat.CONFIG_FILE), bad.resolve(PeftFormat.CONFIG_FILE));
    Map<String, org.loratransplant.safetensors.TensorData> tensors = new TreeMap<>();
    String poisoned;
    try (SafeTensorsFile f = SafeTensorsFile.open(FIXTURE.resolve(PeftFormat.WEIGHTS_FILE))) {
      List<TensorInfo> all = new ArrayList<>(f.tensors());
      poisoned = all.get(all.size() / 2).name();
      for (TensorInfo t : all) {
        float[] v = f.readFloat32(t.name());
        if (t.name().equals(poisoned)) {
          v[v.length - 1] = Float.NaN;
        }
        tensors.put(t.name(), org.loratransplant.safetensors.TensorData.ofFloat32(t.dims(), v));
      }
    }
    org.loratransplant.safetensors.SafeTensorsWriter.write(bad.resolve(PeftFormat.WEIGHTS_FILE),
        tensors, Map.of("format", "pt"));
    try (LanguageModel lm = LanguageModel.load(BASE, Device.cpu())) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> PeftFormat.read(bad, lm.config(), lm.model().manager()));
      assertTrue(e.getMessage().contains("'" + poisoned + "'"), e.getMessage());
      assertTrue(e.getMessage().contains(PeftFormat.WEIGHTS_FILE), e.getMessage());
      assertTrue(e.getMessage().contains("NaN"), e.getMessage());
    }
  }
}
