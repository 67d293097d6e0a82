package org.loratransplant.model;

import ai.djl.Device;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Set;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What {@link Precision#AUTO} becomes for one model on one device: bf16 where the device computes
 * bf16 products natively and the model is wide enough for that to pay, float32 elsewhere.
 *
 * <p>Why these rules (README, "bf16"; expert + amateur scoring, 32 x 128, one lane, this
 * project's 2-core Xeon with AMX): bf16 against float32 ran 1.11x on stories260K (hidden 64),
 * 1.32x on babyllama (128), 2.1x on the SmolLM-135M shape (576), 2.6x on SmolLM-360M (960) and
 * 3.7x on Llama-3.2-1B (2048). Below {@value #MIN_HIDDEN} wide the gain is small and float32 stays
 * exact against the fixtures; at and above it the log-prob error (~0.01 nats) is far below the
 * excess TiTok ranks tokens by. Without native units (a CPU with neither AMX-BF16 nor
 * AVX512-BF16, a GPU before compute capability 8.0) bf16 products are emulated and slower.
 * Each executor decides for itself: a cluster that mixes machines with and without the units
 * computes some partitions in each format.
 *
 * <p>On a GPU of compute capability 7.0 or later (tensor cores), a checkpoint that stores its
 * products in float16 is kept so ({@link Precision#F16}): its exact values, where bf16 would
 * round them again. On a CPU float16 products run no faster than float32 (measured: README,
 * "float16"), so there the checkpoint's type does not matter.
 */
public final class AutoPrecision {
  private static final Logger LOG = LoggerFactory.getLogger(AutoPrecision.class);
  /** The narrowest hidden size {@code auto} computes in bf16. */
  public static final int MIN_HIDDEN = 512;
  /** The /proc/cpuinfo flags of x86 bf16 matrix or vector units. */
  static final Set<String> CPU_BF16_FLAGS = Set.of("amx_bf16", "avx512_bf16");
  private static final Pattern SPACES = Pattern.compile("\\s+");
  private static volatile Set<String> cpuFlags;

  private AutoPrecision() {}

  /** The format chosen and why, in words for the log. */
  public record Choice(Precision precision, String reason) {}

  /**
   * The choice for {@code config} on {@code device} ({@code f16Checkpoint}: its products are
   * stored in float16), logged once per model load.
   */
  public static Choice choose(ModelConfig config, Device device, boolean f16Checkpoint) {
    boolean gpu = device.isGpu();
    Choice c = choose(config.hiddenSize(), gpu,
        gpu ? cudaCapability(device) : null, cpuFlags(), f16Checkpoint);
    LOG.info("precision auto -> {}: {}", c.precision().label(), c.reason());
    return c;
  }

  /**
   * The rule itself, on what the machine reports.
   *
   * @param cudaCapability the GPU's compute capability as CUDA writes it ("80", "90"), or null
   *     when unknown or on the CPU
   * @param cpuFlags the CPU's feature flags (/proc/cpuinfo), empty when unknown
   * @param f16Checkpoint whether the checkpoint stores its products in float16
   */
  static Choice choose(int hiddenSize, boolean gpu, String cudaCapability,
      Set<String> cpuFlags, boolean f16Checkpoint) {
    if (hiddenSize < MIN_HIDDEN) {
      return new Choice(Precision.FP32, "hidden size " + hiddenSize + " < " + MIN_HIDDEN
          + ": bf16 products would gain little at this width");
    }
    if (gpu) {
      int major = majorOf(cudaCapability);
      if (f16Checkpoint && major >= 7) {
        return new Choice(Precision.F16, "GPU of compute capability " + cudaCapability
            + " computes float16 natively and the checkpoint stores float16: its values kept; "
            + "hidden size " + hiddenSize);
      }
      return major >= 8
          ? new Choice(Precision.BF16, "GPU of compute capability " + cudaCapability
              + " computes bf16 natively; hidden size " + hiddenSize)
          : new Choice(Precision.FP32, "GPU of compute capability " + (cudaCapability == null
              ? "unknown" : cudaCapability) + " has no native bf16 (8.0 or later does)");
    }
    Set<String> have = cpuFlags.stream().filter(CPU_BF16_FLAGS::contains)
        .collect(Collectors.toCollection(java.util.TreeSet::new));
    return have.isEmpty()
        ? new Choice(Precision.FP32, "the CPU reports neither " + String.join(" nor ",
            new java.util.TreeSet<>(CPU_BF16_FLAGS)) + ": bf16 products would be emulated")
        : new Choice(Precision.BF16, "the CPU has " + String.join(", ", have)
            + "; hidden size " + hiddenSize);
  }

  private static int majorOf(String capability) {
    if (capability == null || capability.isEmpty() || !Character.isDigit(capability.charAt(0))) {
      return -1;
    }
    // CUDA writes major and minor as digits, "86" or "8.6"; majors are one digit up to 9, two
    // from 10 (Blackwell's "100", "120").
    String digits = capability.replace(".", "");
    return Integer.parseInt(digits.substring(0, Math.max(1, digits.length() - 1)));
  }

  private static String cudaCapability(Device device) {
    try {
      return ai.djl.util.cuda.CudaUtils.getComputeCapability(device.getDeviceId());
    } catch (RuntimeException | LinkageError e) {
      LOG.warn("cannot read the compute capability of {}: {}", device, e.toString());
      return null;
    }
  }

  /** The flags of the first processor in /proc/cpuinfo, read once; empty off Linux. */
  static Set<String> cpuFlags() {
    Set<String> f = cpuFlags;
    if (f == null) {
      f = readCpuFlags(Path.of("/proc/cpuinfo"));
      cpuFlags = f;
    }
    return f;
  }

  static Set<String> readCpuFlags(Path cpuinfo) {
    try (var lines = Files.lines(cpuinfo)) {
      return lines.filter(l -> l.startsWith("flags") || l.startsWith("Features"))
          .findFirst()
          .map(l -> java.util.Arrays.stream(SPACES.split(l.substring(l.indexOf(':') + 1)
              .strip().toLowerCase(Locale.ROOT))).collect(Collectors.toUnmodifiableSet()))
          .orElse(Set.of());
    } catch (IOException | RuntimeException e) {
      return Set.of();
    }
  }
}
