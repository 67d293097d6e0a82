package org.loratransplant.transfer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.EnumSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.cli.Main;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.model.ModelConfig;
import org.loratransplant.model.Projection;
import org.loratransplant.safetensors.Checkpoint;
import org.loratransplant.testing.SharedData;

/** Transfers between the shared tiny models, checked against what each method must write. */
class TransferTest {
  private static final Path STORIES = SharedData.model("stories260K");
  private static final Path XS = SharedData.model("llama2xs");
  private static final Path BABY = SharedData.model("babyllama-tok105");

  /** {@code scaling * B A} of one module, (out, in), float64. */
  private static NDArray delta(LoraAdapter a, int layer, Projection p) {
    LoraAdapter.Pair pair = a.pairs().get(new LoraAdapter.Key(layer, p));
    return pair.bT().transpose().toType(DataType.FLOAT64, false)
        .matMul(pair.aT().transpose().toType(DataType.FLOAT64, false))
        .mul(a.config().scaling());
  }

  private static double relErr(NDArray x, NDArray y) {
    return Math.sqrt(Subspaces.squaredNorm(x.sub(y)) / Subspaces.squaredNorm(y));
  }

  @Test
  void layerMapFollowsRelativeDepth() {
    assertArrayEquals(new int[] {0, 1, 2, 3, 4}, LayerMap.byRelativeDepth(5, 5));
    assertArrayEquals(new int[] {0, 1, 3, 4}, LayerMap.byRelativeDepth(5, 4)); // 0, 4/3, 8/3, 4
    assertArrayEquals(new int[] {0, 1, 2, 2, 3}, LayerMap.byRelativeDepth(4, 5)); // .75 1.5 2.25
    assertArrayEquals(new int[] {0, 16, 31}, LayerMap.byRelativeDepth(32, 3)); // 15.5 rounds up
  }

  @Test
  void directReuseOnLlama2xsCopiesAttentionAndReportsTheMlpSkipped(@TempDir Path tmp)
      throws Exception {
    // The configs: same attention shapes (hidden 64, 8 heads x 8, 4 kv heads), MLP 172 vs 192.
    ModelConfig s = ModelConfig.load(STORIES);
    ModelConfig t = ModelConfig.load(XS);
    assertEquals(s.hiddenSize(), t.hiddenSize());
    assertEquals(s.numKvHeads() * s.headDim(), t.numKvHeads() * t.headDim());
    assertEquals(172, s.intermediateSize());
    assertEquals(192, t.intermediateSize());
    Path src = tmp.resolve("src");
    RandomLora.write(src, STORIES, 4, 8, 11);
    Path out = tmp.resolve("out");
    assertEquals(0, Main.run(new String[] {"transfer", "--method", "direct", "--source-model",
        STORIES.toString(), "--adapter", src.toString(), "--target-model", XS.toString(),
        "--out", out.toString()}));
    JsonNode report = new ObjectMapper().readTree(out.resolve(TransferReport.JSON_FILE).toFile());
    assertEquals(35, report.get("modules").asInt());
    assertEquals(20, report.get("transferred").asInt()); // 5 layers x q, k, v, o
    for (JsonNode row : report.get("rows")) {
      boolean mlp = row.get("module").asText().matches("gate_proj|up_proj|down_proj");
      assertEquals(!mlp, row.get("transferred").asBoolean(), row.toString());
      if (mlp) {
        assertTrue(row.get("reason").asText().contains("never pads"), row.toString());
        assertEquals(0.0, row.get("relative_norm").asDouble());
      }
    }
    assertTrue(Files.readString(out.resolve(TransferReport.MARKDOWN_FILE))
        .contains("| gate_proj | 0 | 0 | 172x64 | 192x64 |"));
    try (NDManager m = NDManager.newBaseManager(Device.cpu());
        LoraAdapter a = PeftFormat.read(src, s, m);
        LoraAdapter b = PeftFormat.read(out, t, m)) {
      assertEquals(EnumSet.of(Projection.Q_PROJ, Projection.K_PROJ, Projection.V_PROJ,
          Projection.O_PROJ), b.config().targetModules());
      for (var e : b.pairs().entrySet()) {
        LoraAdapter.Pair want = a.pairs().get(e.getKey());
        assertArrayEquals(want.aT().toFloatArray(), e.getValue().aT().toFloatArray());
        assertArrayEquals(want.bT().toFloatArray(), e.getValue().bT().toFloatArray());
      }
    }
  }

  @Test
  void loraXOntoTheSourceItselfAtFullRankReturnsSquareUpdatesUnchanged(@TempDir Path tmp) {
    Path src = tmp.resolve("src");
    RandomLora.write(src, STORIES, 4, 8, 12);
    Transfer.Result r = Transfer.run(new TransferSettings(Method.LORA_X, 64, 0.5, 0), STORIES,
        src, STORIES);
    assertEquals(35, r.transferred()); // overlap of a subspace with itself is 1
    ModelConfig c = ModelConfig.load(STORIES);
    try (NDManager m = NDManager.newBaseManager(Device.cpu());
        LoraAdapter a = PeftFormat.read(src, c, m);
        LoraAdapter b = r.adapter(m)) {
      for (int l = 0; l < c.numLayers(); l++) {
        for (Projection p : new Projection[] {Projection.Q_PROJ, Projection.O_PROJ}) {
          double err = relErr(delta(b, l, p), delta(a, l, p));
          assertTrue(err < 1e-5, "layer " + l + " " + p + ": " + err);
        }
      }
    }
    for (ModuleReport row : r.modules()) {
      assertEquals(1.0, row.similarity(), 1e-9, row.toString());
      if (row.module().equals("q_proj")) {
        assertEquals(1.0, row.relativeNorm(), 1e-9, row.toString());
      } else {
        assertTrue(row.relativeNorm() <= 1 + 1e-9, row.toString()); // a projection never grows
      }
    }
  }

  @Test
  void loraXOnLlama2xsWritesTheProjectedUpdateWithItsScaling(@TempDir Path tmp) {
    Path src = tmp.resolve("src");
    RandomLora.write(src, STORIES, 4, 16, 13);
    Transfer.Result r = Transfer.run(new TransferSettings(Method.LORA_X, 0, 0, 0), STORIES, src,
        XS);
    ModelConfig s = ModelConfig.load(STORIES);
    ModelConfig t = ModelConfig.load(XS);
    try (NDManager m = NDManager.newBaseManager(Device.cpu());
        Checkpoint tw = Checkpoint.open(XS);
        LoraAdapter a = PeftFormat.read(src, s, m);
        LoraAdapter b = r.adapter(m)) {
      assertEquals(4, b.config().r());
      assertEquals(4.0, b.config().scaling());
      for (ModuleReport row : r.modules()) {
        Projection p = Projection.fromModuleName(row.module());
        if (p.ordinal() >= Projection.GATE_PROJ.ordinal() && p != Projection.DOWN_PROJ) {
          assertFalse(row.transferred(), "gate/up differ in shape: " + row);
          continue;
        }
        if (p == Projection.DOWN_PROJ) {
          assertFalse(row.transferred(), "down differs in shape: " + row);
          continue;
        }
        assertTrue(row.transferred(), row.toString());
        int k = TransferSettings.defaultRank(Math.min(p.outFeatures(t), p.inFeatures(t)));
        assertEquals(k, row.subspaceRank());
        // The oracle: U_k U_k^T dW V_k V_k^T with the target weight's SVD, formed densely.
        NDArray w = m.create(tw.readFloat32(p.keyPrefix(row.layer()) + ".weight"),
            new Shape(p.outFeatures(t), p.inFeatures(t)));
        Svd svd = Linalg.svd(w).truncate(k);
        NDArray want = Subspaces.loraXDense(delta(a, row.layer(), p), svd);
        NDArray got = delta(b, row.layer(), p);
        assertTrue(relErr(got, want) < 1e-5, row + " err " + relErr(got, want));
        double ratio = Math.sqrt(Subspaces.squaredNorm(want)
            / Subspaces.squaredNorm(delta(a, row.layer(), p)));
        assertEquals(ratio, row.relativeNorm(), 1e-6);
        assertTrue(ratio < 1, "a rank-" + k + " projection removes part of a random update");
      }
    }
  }

  @Test
  void thresholdSkipsModulesBelowIt(@TempDir Path tmp) {
    Path src = tmp.resolve("src");
    RandomLora.write(src, STORIES, 2, 2, 14);
    // The smallest positive threshold: at 0 LoRA-X measures no similarity (see below).
    Transfer.Result all = Transfer.run(new TransferSettings(Method.LORA_X, 0, Double.MIN_VALUE,
        0), STORIES, src, XS);
    double[] sims = all.modules().stream().filter(ModuleReport::transferred)
        .mapToDouble(ModuleReport::similarity).sorted().toArray();
    double median = sims[sims.length / 2];
    Transfer.Result some = Transfer.run(new TransferSettings(Method.LORA_X, 0, median, 0),
        STORIES, src, XS);
    for (ModuleReport row : some.modules()) {
      if (!Double.isNaN(row.similarity())) {
        assertEquals(row.similarity() >= median, row.transferred(), row.toString());
        if (!row.transferred()) {
          assertTrue(row.reason().startsWith("similarity "), row.reason());
        }
      }
    }
  }

  @Test
  void loraXAtThresholdZeroWritesTheSameAdapterWithoutMeasuringSimilarity(@TempDir Path tmp) {
    Path src = tmp.resolve("src");
    RandomLora.write(src, STORIES, 4, 8, 16);
    Transfer.Result zero = Transfer.run(new TransferSettings(Method.LORA_X, 0, 0, 0), STORIES,
        src, XS);
    Transfer.Result tiny = Transfer.run(new TransferSettings(Method.LORA_X, 0, Double.MIN_VALUE,
        0), STORIES, src, XS);
    assertEquals(tiny.transferred(), zero.transferred());
    assertEquals(tiny.values().keySet(), zero.values().keySet());
    for (var e : tiny.values().entrySet()) {
      assertArrayEquals(e.getValue().a(), zero.values().get(e.getKey()).a(), e.getKey() + " A");
      assertArrayEquals(e.getValue().b(), zero.values().get(e.getKey()).b(), e.getKey() + " B");
    }
    for (ModuleReport row : zero.modules()) {
      if (row.transferred()) {
        assertTrue(Double.isNaN(row.similarity()), "the source SVD is skipped: " + row);
      }
    }
  }

  @Test
  void crossLoraToADoubledHiddenSizeWritesALoadableAdapter(@TempDir Path tmp) {
    Path src = tmp.resolve("src");
    RandomLora.write(src, STORIES, 4, 8, 15);
    Path out = tmp.resolve("out");
    Transfer.Result r = Transfer.run(new TransferSettings(Method.CROSS_LORA, 0, 0, 0), STORIES,
        src, BABY);
    r.write(out);
    assertEquals(35, r.transferred());
    ModelConfig t = ModelConfig.load(BABY);
    try (NDManager m = NDManager.newBaseManager(Device.cpu());
        LoraAdapter b = PeftFormat.read(out, t, m)) {
      NDArray d = delta(b, 2, Projection.Q_PROJ);
      assertArrayEquals(new long[] {128, 128}, d.getShape().getShape());
      assertTrue(Subspaces.squaredNorm(d) > 0);
    }
    for (ModuleReport row : r.modules()) {
      assertTrue(row.relativeNorm() <= 1 + 1e-9, "orthonormal maps never grow dW: " + row);
    }
  }
}
