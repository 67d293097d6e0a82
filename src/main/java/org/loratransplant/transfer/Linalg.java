package org.loratransplant.transfer;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.engine.PtNDManager;
import ai.djl.pytorch.engine.PtSymbolBlock;
import ai.djl.pytorch.jni.IValue;
import ai.djl.pytorch.jni.IValueUtils;
import java.util.Map;
import java.util.SplittableRandom;
import org.loratransplant.model.TorchScriptArchive;

/**
 * SVD on libtorch. DJL 0.35's NDArray has no SVD or QR (only {@code inverse}), so the
 * decompositions are a few lines of TorchScript ({@code Linalg.py}) compiled by libtorch from
 * source, as the decoder is: LAPACK's {@code gesdd}/{@code geqrf} in float64, no Python.
 *
 * <p>{@link #truncated} is exact (full thin SVD, then the first k triplets) for matrices whose
 * smaller side is at most {@link #EXACT_MAX_DIM} or when k is at least a quarter of it; above
 * that it is a randomised block Krylov SVD (blocks of k + {@link #OVERSAMPLE} columns,
 * {@link #KRYLOV_ITERATIONS} iterations, seeded), which is what makes a 7B-shaped adapter
 * transfer in minutes: a full SVD of a 4096 x 11008 matrix costs ~1e12 flops, this one ~1e11 in
 * the weight's own dtype (bf16 products run ~4x faster than float32 ones on CPUs with AVX-512
 * BF16). Why Krylov and not plain subspace iteration: on matrices with slowly decaying spectra
 * (power laws s_i ~ i^-0.3 to i^-1, as trained weights have) subspace iteration with 2
 * iterations and 16 extra columns returned a top-64 subspace whose LoRA-X output was 20-75% off
 * the exact one; the Krylov space of the same number of large products is within a few percent
 * ({@code SubspacesTest}, README "Training-free transfers").
 */
public final class Linalg {
  /** Largest smaller-side dimension decomposed exactly whatever k is. */
  public static final int EXACT_MAX_DIM = 1024;
  /** Extra random columns per Krylov block (Halko et al. suggest 5 to 10; we take more). */
  public static final int OVERSAMPLE = 16;
  /**
   * Krylov iterations: the space holds {@code 1 + KRYLOV_ITERATIONS} blocks, and the large
   * products number {@code 2 + 2 KRYLOV_ITERATIONS}, the last one {@code 1 + KRYLOV_ITERATIONS}
   * blocks wide. 4 keeps the top-64 LoRA-X output within 5% of the exact one on s_i ~ i^-0.3.
   */
  public static final int KRYLOV_ITERATIONS = 4;

  private static volatile PtSymbolBlock module;

  private Linalg() {}

  /** The thin SVD of {@code a (m, n)} in float64, canonical signs (see Linalg.py). */
  public static Svd svd(NDArray a) {
    requireMatrix(a);
    try (IValue in = IValue.from((PtNDArray) a)) {
      return result(IValueUtils.runMethod(module(), "svd", in), a.getManager());
    }
  }

  /**
   * The first {@code k} singular triplets of {@code a} (float32 or float64): exact where cheap
   * (see the class doc), else randomised with {@code seed}. For a randomised one the large
   * products run in {@code a}'s dtype, the factorisations in float64; the result is float64.
   */
  public static Svd truncated(NDArray a, int k, long seed) {
    requireMatrix(a);
    return truncated(a, a.getShape().get(0), a.getShape().get(1), false, k, seed);
  }

  /**
   * {@link #truncated} of a float32 matrix whose values are bf16 (read from a bf16 checkpoint):
   * a randomised SVD runs its large products in bf16, ~4x faster than float32 on CPUs with
   * AVX-512 BF16 and exact on the inputs; the factorisations stay float64. (DJL 0.35 aborts the
   * JVM on creating or casting to a bf16 array, so the cast happens inside libtorch.)
   */
  public static Svd truncatedBf16(NDArray a, int k, long seed) {
    requireMatrix(a);
    return truncated(a, a.getShape().get(0), a.getShape().get(1), true, k, seed);
  }

  private static Svd truncated(NDArray a, long m, long n, boolean bf16, int k, long seed) {
    long min = Math.min(m, n);
    if (k <= 0) {
      throw new IllegalArgumentException("SVD rank must be positive, got " + k);
    }
    int l = k + OVERSAMPLE;
    if (min <= EXACT_MAX_DIM || 4L * k >= min || (long) l * (KRYLOV_ITERATIONS + 1) >= min) {
      return svd(a).truncate(k);
    }
    long max = Math.max(m, n); // the Krylov blocks live on the smaller side (see Linalg.py)
    SplittableRandom rng = new SplittableRandom(seed);
    float[] omega = new float[(int) (max * l)];
    for (int i = 0; i < omega.length; i++) {
      omega[i] = (float) gaussian(rng);
    }
    NDManager scope = a.getManager();
    try (NDArray o = scope.create(omega, new Shape(max, l));
        IValue ia = IValue.from((PtNDArray) a);
        IValue io = IValue.from((PtNDArray) o);
        IValue it = IValue.from((long) KRYLOV_ITERATIONS)) {
      return result(IValueUtils.runMethod(module(), bf16 ? "rsvd16" : "rsvd", ia, io, it),
          scope).truncate(k);
    }
  }

  private static double gaussian(SplittableRandom rng) {
    double u1 = rng.nextDouble();
    double u2 = rng.nextDouble();
    return Math.sqrt(-2 * Math.log1p(-u1)) * Math.cos(2 * Math.PI * u2);
  }

  private static void requireMatrix(NDArray a) {
    if (a.getShape().dimension() != 2) {
      throw new IllegalArgumentException("SVD needs a matrix, got shape " + a.getShape());
    }
    if (a.getDataType() != DataType.FLOAT32 && a.getDataType() != DataType.FLOAT64) {
      throw new IllegalArgumentException("SVD needs float32 or float64, got " + a.getDataType());
    }
  }

  private static Svd result(IValue out, NDManager scope) {
    try (out) {
      IValue[] t = out.toIValueTuple();
      try {
        PtNDManager m = (PtNDManager) scope;
        return new Svd(t[0].toTensor(m), t[1].toTensor(m), t[2].toTensor(m));
      } finally {
        for (IValue v : t) {
          v.close();
        }
      }
    }
  }

  private static PtSymbolBlock module() {
    PtSymbolBlock m = module;
    if (m == null) {
      synchronized (Linalg.class) {
        if (module == null) {
          module = load();
        }
        m = module;
      }
    }
    return m;
  }

  private static PtSymbolBlock load() {
    // One small module shared by all threads.
    return TorchScriptArchive.load("Linalg", TorchScriptArchive.source(Linalg.class, "Linalg.py"),
        Map.of("training", false), Device.cpu());
  }

}
