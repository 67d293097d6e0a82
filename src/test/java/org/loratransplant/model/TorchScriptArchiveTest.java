package org.loratransplant.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.engine.EngineException;
import ai.djl.ndarray.NDManager;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.engine.PtNDManager;
import ai.djl.pytorch.engine.PtSymbolBlock;
import ai.djl.pytorch.jni.IValue;
import ai.djl.pytorch.jni.IValueUtils;
import ai.djl.pytorch.jni.JniUtils;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The archives we write are read by libtorch's own loader: the attributes come back with the
 * values pickled (negative and large ints, doubles, booleans), methods compile and run, and a
 * source that does not compile fails with libtorch's message naming the problem.
 */
class TorchScriptArchiveTest {
  private static final String PROBE = String.join("\n",
      "class Probe(Module):",
      "  __parameters__ = []",
      "  __buffers__ = []",
      "  training : bool",
      "  small : int",
      "  big : int",
      "  ratio : float",
      "  flag : bool",
      "  def values(self: __torch__.Probe) -> Tuple[int, int, float, bool]:",
      "    return (self.small, self.big, self.ratio, self.flag)",
      "  def scaled(self: __torch__.Probe, x: Tensor) -> Tensor:",
      "    return x * self.ratio + self.small",
      "");

  @Test
  void libtorchReadsTheAttributesAndRunsTheMethods() throws IOException {
    Map<String, Object> attrs = new LinkedHashMap<>();
    attrs.put("training", false);
    attrs.put("small", -3);
    attrs.put("big", 1L << 40);
    attrs.put("ratio", 0.125);
    attrs.put("flag", true);
    try (PtNDManager m = (PtNDManager) NDManager.newBaseManager();
        PtSymbolBlock module = JniUtils.loadModule(m, new ByteArrayInputStream(
            TorchScriptArchive.write("Probe", PROBE, attrs)), true, false)) {
      try (IValue out = IValueUtils.runMethod(module, "values")) {
        IValue[] v = out.toIValueTuple();
        assertEquals(-3, v[0].toLong());
        assertEquals(1L << 40, v[1].toLong());
        assertEquals(0.125, v[2].toDouble());
        assertTrue(v[3].toBoolean());
      }
      PtNDArray x = (PtNDArray) m.create(new float[] {8, 16, -24});
      try (IValue in = IValue.from(x);
          IValue out = IValueUtils.runMethod(module, "scaled", in)) {
        assertArrayEquals(new float[] {-2, -1, -6}, out.toTensor(m).toFloatArray());
      }
    }
  }

  @Test
  void aSourceThatDoesNotCompileFailsWithLibtorchsMessage() {
    String broken = PROBE.replace("self.small, self.big", "self.missing, self.big");
    Map<String, Object> attrs = new LinkedHashMap<>();
    attrs.put("training", false);
    attrs.put("small", 1);
    attrs.put("big", 2);
    attrs.put("ratio", 1.0);
    attrs.put("flag", false);
    try (PtNDManager m = (PtNDManager) NDManager.newBaseManager()) {
      EngineException e = assertThrows(EngineException.class, () -> JniUtils.loadModule(m,
          new ByteArrayInputStream(TorchScriptArchive.write("Probe", broken, attrs)), true,
          false));
      assertTrue(e.getMessage().contains("missing"), e.getMessage());
    }
  }

  @Test
  void attributesOfOtherTypesAreRefusedByName() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> TorchScriptArchive.write("Probe", PROBE, Map.of("name", "text")));
    assertTrue(e.getMessage().contains("'name'"), e.getMessage());
  }
}
