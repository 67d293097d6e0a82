package org.loratransplant.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.testing.SharedData;

/** {@code auto}: bf16 only where the device has bf16 units and the model is wide enough. */
class AutoPrecisionTest {
  static final Set<String> AMX = Set.of("fpu", "avx512f", "amx_bf16", "amx_tile");
  static final Set<String> AVX2 = Set.of("fpu", "avx2", "fma");

  @Test
  void bf16OnlyWithNativeUnitsAndAWideEnoughModel() {
    assertEquals(Precision.BF16, AutoPrecision.choose(576, false, null, AMX, false).precision());
    assertEquals(Precision.BF16, AutoPrecision.choose(4096, false, null,
        Set.of("avx512_bf16"), false).precision());
    AutoPrecision.Choice emulated = AutoPrecision.choose(4096, false, null, AVX2, false);
    assertEquals(Precision.FP32, emulated.precision());
    assertTrue(emulated.reason().contains("neither amx_bf16 nor avx512_bf16"),
        emulated.reason());
    AutoPrecision.Choice narrow = AutoPrecision.choose(511, false, null, AMX, false);
    assertEquals(Precision.FP32, narrow.precision());
    assertTrue(narrow.reason().contains("hidden size 511 < 512"), narrow.reason());
    assertEquals(Precision.BF16, AutoPrecision.choose(512, false, null, AMX, false).precision());
  }

  @Test
  void onAGpuByComputeCapability() {
    assertEquals(Precision.BF16, AutoPrecision.choose(2048, true, "80", Set.of(), false).precision());
    assertEquals(Precision.BF16, AutoPrecision.choose(2048, true, "90", Set.of(), false).precision());
    assertEquals(Precision.BF16, AutoPrecision.choose(2048, true, "120", Set.of(), false).precision());
    assertEquals(Precision.BF16, AutoPrecision.choose(2048, true, "8.6", Set.of(), false).precision());
    // V100 (7.0) and T4 (7.5) have no bf16 units; the CPU's flags do not count for a GPU.
    assertEquals(Precision.FP32, AutoPrecision.choose(2048, true, "70", AMX, false).precision());
    assertEquals(Precision.FP32, AutoPrecision.choose(2048, true, "75", AMX, false).precision());
    assertEquals(Precision.FP32, AutoPrecision.choose(2048, true, null, AMX, false).precision());
  }

  @Test
  void aFloat16CheckpointStaysFloat16OnAGpuWithTensorCoresOnly() {
    // Volta (7.0) and Turing (7.5) have float16 tensor cores but no bf16; Ampere on has both,
    // and float16 keeps the checkpoint's own values.
    for (String cc : new String[] {"70", "75", "80", "90"}) {
      AutoPrecision.Choice c = AutoPrecision.choose(2048, true, cc, Set.of(), true);
      assertEquals(Precision.F16, c.precision(), cc);
      assertTrue(c.reason().contains("values kept"), c.reason());
    }
    assertEquals(Precision.FP32, AutoPrecision.choose(2048, true, "61", Set.of(), true)
        .precision(), "Pascal: no tensor cores");
    assertEquals(Precision.FP32, AutoPrecision.choose(2048, true, null, Set.of(), true)
        .precision(), "capability unknown");
    assertEquals(Precision.FP32, AutoPrecision.choose(256, true, "90", Set.of(), true)
        .precision(), "too narrow to pay");
    // On a CPU float16 products are no faster than float32: the bf16 rule alone decides.
    assertEquals(Precision.BF16, AutoPrecision.choose(2048, false, null, AMX, true).precision());
    assertEquals(Precision.FP32, AutoPrecision.choose(2048, false, null, AVX2, true)
        .precision());
  }

  @Test
  void cpuFlagsAreReadFromCpuinfo(@TempDir Path tmp) throws Exception {
    Path x86 = tmp.resolve("x86");
    Files.writeString(x86, "processor\t: 0\nmodel name\t: Xeon\nflags\t\t: fpu avx2 AMX_BF16 "
        + "avx512_bf16 fpu\n\nprocessor\t: 1\nflags\t\t: fpu\n");
    assertEquals(Set.of("fpu", "avx2", "amx_bf16", "avx512_bf16"),
        AutoPrecision.readCpuFlags(x86));
    assertEquals(Set.of(), AutoPrecision.readCpuFlags(tmp.resolve("missing")));
    // This machine: the flags are whatever it reports, and the rule follows them.
    boolean native16 = AutoPrecision.cpuFlags().stream()
        .anyMatch(AutoPrecision.CPU_BF16_FLAGS::contains);
    assertEquals(native16 ? Precision.BF16 : Precision.FP32,
        AutoPrecision.choose(1024, false, null, AutoPrecision.cpuFlags(), false).precision());
  }

  @Test
  void aWideModelLoadedWithAutoFollowsThisCpu(@TempDir Path tmp) {
    Path dir = tmp.resolve("wide");
    org.loratransplant.bench.RandomModel.write(org.loratransplant.bench.RandomModel.scaled(
        org.loratransplant.bench.RandomModel.shape("smollm-135m"), 1, 1000, 64), dir, 3,
        org.loratransplant.safetensors.DType.F32);
    boolean native16 = AutoPrecision.cpuFlags().stream()
        .anyMatch(AutoPrecision.CPU_BF16_FLAGS::contains);
    try (LanguageModel lm = LanguageModel.load(dir, Device.cpu(), Precision.AUTO)) {
      assertEquals(native16 ? Precision.BF16 : Precision.FP32, lm.precision());
      assertEquals(native16, lm.model().bf16Products());
    }
  }

  @Test
  void aTinyModelLoadedWithAutoComputesInFloat32() {
    try (LanguageModel lm = LanguageModel.load(SharedData.model("stories260K"), Device.cpu(),
        Precision.AUTO)) {
      assertEquals(Precision.FP32, lm.precision());
      assertFalse(lm.model().bf16Products());
      lm.setPrecision(Precision.AUTO);
      assertEquals(Precision.FP32, lm.precision());
    }
  }
}
