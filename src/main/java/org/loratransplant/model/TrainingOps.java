package org.loratransplant.model;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.DataType;
import ai.djl.pytorch.engine.PtSymbolBlock;
import ai.djl.pytorch.jni.IValueUtils;
import ai.djl.pytorch.jni.JniUtils;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The fused ops of {@link LlamaModel}'s differentiable forward, as small TorchScript modules
 * ({@code TrainingOps.py} beside this class): RMSNorm, RoPE, SiLU-gated MLP inputs, products
 * with bf16 weights, and the two bf16 conversions loading a model in bf16 needs. DJL has no
 * {@code silu} or {@code rsqrt}, and building them from its ops cost a training step of the
 * 135M shape ~10% more than the same step in PyTorch (sigmoid, its backward and three extra
 * products per layer; divisions; the concatenation of the split gate/up gradients). Each module
 * runs through DJL's {@code forward} with autograd recording, so gradients flow through it as
 * through any DJL op (and, as for those, nothing is recorded when no input needs a gradient).
 * Modules are compiled once per device (and, for the MLP, intermediate size) and shared by every
 * model and thread.
 */
final class TrainingOps {
  private static final String SOURCE = TorchScriptArchive.source(TrainingOps.class,
      "TrainingOps.py");
  private static final Map<Key, PtSymbolBlock> LOADED = new ConcurrentHashMap<>();
  /** DJL's setting of TorchScript's graph optimiser, restored after each op. */
  private static final boolean OPTIMIZE_DEFAULT =
      Boolean.parseBoolean(System.getProperty("ai.djl.pytorch.graph_optimizer", "true"));

  private record Key(String className, long inter, Device device) {}

  private TrainingOps() {}

  /** {@code weight * x / sqrt(mean(x^2) + eps)} over the last axis of x {@code (..., E)}. */
  static NDArray rmsNorm(NDArray x, NDArray weight, NDArray eps, NDArray meanColumn) {
    return run(new Key("RmsNorm", 0, x.getDevice()), x, weight, eps, meanColumn);
  }

  /**
   * {@code silu(x @ gate.t()) * (x @ up.t())} for {@code gateUp (2 I, E)} = {@code [gate | up]}
   * (no bias, no adapter delta on either).
   */
  static NDArray swiGlu(NDArray x, NDArray gateUp) {
    return run(new Key("SwiGlu", gateUp.getShape().get(0) / 2, x.getDevice()), x, gateUp);
  }

  /**
   * RoPE on {@code x (B, T, heads, D)}: {@code x*cos + rotate_half(x)*sin} where
   * {@code rotate_half(x) = cat(-x2, x1)}, computed as {@code x*cos + roll(x, D/2)*sinSigned}
   * with {@code sinSigned} the sin table's first half negated ({@code (B, T, 1, D)} tables).
   */
  static NDArray rope(NDArray x, NDArray cos, NDArray sinSigned) {
    return run(new Key("Rope", 0, x.getDevice()), x, cos, sinSigned);
  }

  /** {@code silu(gate) * up}. */
  static NDArray siluMul(NDArray gate, NDArray up) {
    return run(new Key("SiluMul", 0, gate.getDevice()), gate, up);
  }

  /**
   * {@code x @ w.t()} for a 16-bit weight {@code w (out, in)} ({@link #isHalf}) and float32 x:
   * x rounded to w's format, the product accumulated in float32, the result float32.
   */
  static NDArray mixedLinear(NDArray x, NDArray w) {
    return run(new Key("MixedLinear", 0, x.getDevice()), x, w);
  }

  /**
   * The bfloat16 tensor whose bits the 16-bit tensor {@code bits} holds (read or mapped from a
   * bf16 checkpoint as float16, the 16-bit type DJL can make): the same memory, no copy.
   */
  static NDArray bf16Bits(NDArray bits) {
    return run(new Key("Bf16Bits", 0, bits.getDevice()), bits);
  }

  /** The sum of {@code x} (any float type) as a float32 scalar, accumulated in float32. */
  static NDArray sumFloat32(NDArray x) {
    return run(new Key("SumFloat32", 0, x.getDevice()), x);
  }

  /** {@code x} rounded to bfloat16 (nearest even), a new tensor. */
  static NDArray bf16Round(NDArray x) {
    return run(new Key("Bf16Round", 0, x.getDevice()), x);
  }

  /**
   * Whether {@code a} is a bfloat16 tensor: DJL 0.35 does not map libtorch's bfloat16 and
   * reports such tensors (made only by {@link #bf16Bits} and {@link #bf16Round} here) as
   * {@link DataType#UNKNOWN}.
   */
  static boolean isBf16(NDArray a) {
    DataType t = a.getDataType();
    return t == DataType.BFLOAT16 || t == DataType.UNKNOWN;
  }

  /**
   * Whether {@code a} is a 16-bit weight whose products run mixed ({@link #mixedLinear}):
   * bfloat16 ({@link #isBf16}) or float16.
   */
  static boolean isHalf(NDArray a) {
    return isBf16(a) || a.getDataType() == DataType.FLOAT16;
  }

  private static NDArray run(Key key, NDArray... inputs) {
    PtSymbolBlock module = LOADED.computeIfAbsent(key, TrainingOps::load);
    // Run as written, unoptimised: after its first runs the optimising executor swaps in its own
    // (symbolic) gradients, so a resumed run, whose JVM had run an op fewer times, computed
    // different last bits than an uninterrupted one. The switch is per thread; the decoder's
    // inference script keeps the optimiser.
    JniUtils.setGraphExecutorOptimize(false);
    try {
      // The result joins the first input's manager, as a DJL op's does.
      return IValueUtils.forward(module, new NDList(inputs), true).singletonOrThrow();
    } finally {
      JniUtils.setGraphExecutorOptimize(OPTIMIZE_DEFAULT);
    }
  }

  private static PtSymbolBlock load(Key key) {
    Map<String, Object> attributes = new LinkedHashMap<>();
    attributes.put("training", false);
    if (key.className().equals("SwiGlu")) {
      attributes.put("inter", key.inter());
    }
    return TorchScriptArchive.load(key.className(), SOURCE, attributes, key.device());
  }


}
