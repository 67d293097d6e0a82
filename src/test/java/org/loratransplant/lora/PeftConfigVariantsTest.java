package org.loratransplant.lora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.EnumSet;
import java.util.List;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.model.ModelConfig;
import org.loratransplant.model.Projection;
import org.loratransplant.testing.SharedData;

/**
 * adapter_config.json as users' PEFT writes it: peft 0.12.0's fixture (r 4 on q/v/down_proj of
 * tiny-llama3, two layers) with its config edited the way other settings save it.
 */
class PeftConfigVariantsTest {
  private static final Path FIXTURE = SharedData.hfReference("peft-tiny-llama3-lora");
  private static final ModelConfig BASE = ModelConfig.load(SharedData.hfReference("tiny-llama3"));
  private static final ObjectMapper JSON = new ObjectMapper();
  @TempDir Path tmp;

  /** The fixture with its config changed by {@code edit}. */
  private Path variant(String name, Consumer<ObjectNode> edit) throws Exception {
    Path dir = tmp.resolve(name);
    Files.createDirectories(dir);
    Files.copy(FIXTURE.resolve(PeftFormat.WEIGHTS_FILE), dir.resolve(PeftFormat.WEIGHTS_FILE));
    ObjectNode c = (ObjectNode) JSON.readTree(FIXTURE.resolve(PeftFormat.CONFIG_FILE).toFile());
    edit.accept(c);
    Files.writeString(dir.resolve(PeftFormat.CONFIG_FILE), JSON.writeValueAsString(c));
    return dir;
  }

  private static void targets(ObjectNode c, String... names) {
    ArrayNode a = c.putArray("target_modules");
    for (String n : names) {
      a.add(n);
    }
  }

  private static final EnumSet<Projection> QVD =
      EnumSet.of(Projection.Q_PROJ, Projection.V_PROJ, Projection.DOWN_PROJ);

  @Test
  void fullModuleNamesOfEveryLayerReadAsTheSameAdapter() throws Exception {
    // What an "all-linear"-style save lists: each adapted module by its full name.
    Path dir = variant("full", c -> targets(c, "model.layers.0.self_attn.q_proj",
        "model.layers.0.self_attn.v_proj", "model.layers.0.mlp.down_proj",
        "model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj",
        "model.layers.1.mlp.down_proj"));
    LoraConfig c = PeftFormat.readConfig(dir);
    assertEquals(QVD, c.targetModules());
    assertEquals(List.of(0, 1), c.layersToTransform());
    try (NDManager m = NDManager.newBaseManager();
        LoraAdapter got = PeftFormat.read(dir, BASE, m);
        LoraAdapter want = PeftFormat.read(FIXTURE, BASE, m)) {
      assertEquals(want.pairs().keySet(), got.pairs().keySet());
      for (var e : want.pairs().entrySet()) {
        assertArrayEquals(e.getValue().aT().toFloatArray(),
            got.pairs().get(e.getKey()).aT().toFloatArray(), 0f);
        assertArrayEquals(e.getValue().bT().toFloatArray(),
            got.pairs().get(e.getKey()).bT().toFloatArray(), 0f);
      }
    }
  }

  @Test
  void suffixNamesMatchAsPeftMatchesThem() throws Exception {
    Path dir = variant("suffix", c -> targets(c, "self_attn.q_proj", "attn.v_proj",
        "mlp.down_proj"));
    // "attn.v_proj" is not a suffix at a dot of "...self_attn.v_proj": PEFT does not match it.
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> PeftFormat.readConfig(dir));
    assertTrue(e.getMessage().contains("'attn.v_proj'"), e.getMessage());
    Path ok = variant("suffix-ok", c -> targets(c, "self_attn.q_proj", "self_attn.v_proj",
        "layers.1.mlp.down_proj", "1.self_attn.q_proj", "layers.1.self_attn.v_proj"));
    // Layer-free names adapt every layer; mixing them with one layer's names is refused.
    e = assertThrows(IllegalArgumentException.class, () -> PeftFormat.readConfig(ok));
    assertTrue(e.getMessage().contains("layer-free"), e.getMessage());
    Path free = variant("suffix-free", c -> targets(c, "self_attn.q_proj", "self_attn.v_proj",
        "mlp.down_proj"));
    LoraConfig c = PeftFormat.readConfig(free);
    assertEquals(QVD, c.targetModules());
    assertTrue(c.layersToTransform().isEmpty());
    try (NDManager m = NDManager.newBaseManager();
        LoraAdapter a = PeftFormat.read(free, BASE, m)) {
      assertEquals(6, a.pairs().size());
    }
  }

  @Test
  void allLinearAndSingleLayerNames() throws Exception {
    LoraConfig all = PeftFormat.readConfig(variant("all", c -> c.put("target_modules",
        "all-linear")));
    assertEquals(EnumSet.allOf(Projection.class), all.targetModules());
    LoraConfig one = PeftFormat.readConfig(variant("one", c -> targets(c,
        "model.layers.1.self_attn.q_proj", "model.layers.1.mlp.down_proj")));
    assertEquals(EnumSet.of(Projection.Q_PROJ, Projection.DOWN_PROJ), one.targetModules());
    assertEquals(List.of(1), one.layersToTransform());
    Path uneven = variant("uneven", c -> targets(c, "model.layers.0.self_attn.q_proj",
        "model.layers.1.mlp.down_proj"));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> PeftFormat.readConfig(uneven));
    assertTrue(e.getMessage().contains("different modules per layer"), e.getMessage());
    Path head = variant("head", c -> targets(c, "q_proj", "lm_head"));
    e = assertThrows(IllegalArgumentException.class, () -> PeftFormat.readConfig(head));
    assertTrue(e.getMessage().contains("'lm_head' is not a projection"), e.getMessage());
  }

  @Test
  void excludeModulesAndAlphaPatternAreRefusedByName() throws Exception {
    Path ex = variant("exclude", c -> c.putArray("exclude_modules")
        .add("model.layers.0.mlp.down_proj"));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> PeftFormat.readConfig(ex));
    assertTrue(e.getMessage().contains("exclude_modules is not supported"), e.getMessage());
    // absent, null or empty exclude_modules is what every plain save writes
    PeftFormat.readConfig(variant("exclude-null", c -> c.putNull("exclude_modules")));
    PeftFormat.readConfig(variant("exclude-empty", c -> c.putArray("exclude_modules")));
    Path alpha = variant("alpha", c -> c.putObject("alpha_pattern").put("q_proj", 16));
    e = assertThrows(IllegalArgumentException.class, () -> PeftFormat.readConfig(alpha));
    assertTrue(e.getMessage().contains("alpha_pattern is not supported"), e.getMessage());
    assertFalse(e.getMessage().contains("ranks"), e.getMessage());
  }

  @Test
  void baseModelIsWrittenAsTheAbsolutePathOfTheDirectory() {
    String typed = Path.of(System.getProperty("lt.shared.dir", "../shared"),
        "models", "stories260K").toString();
    assertTrue(Files.isDirectory(Path.of(typed)), typed);
    String json = PeftFormat.configJson(LoraConfig.defaults(typed));
    String want = SharedData.model("stories260K").toAbsolutePath().normalize().toString();
    assertTrue(want.startsWith("/") && !want.contains(".."), want);
    assertTrue(json.contains("\"base_model_name_or_path\": \"" + want + "\""), json);
    // a hub id (no such directory here) is kept as typed
    assertTrue(PeftFormat.configJson(LoraConfig.defaults("meta-llama/Llama-2-7b-hf"))
        .contains("\"base_model_name_or_path\": \"meta-llama/Llama-2-7b-hf\""));
  }
}
