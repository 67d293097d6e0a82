package org.loratransplant.transfer;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;

/**
 * The mathematics of the training-free transfers (METHODS.md section 3), on float64 arrays.
 *
 * <ul>
 *   <li>LoRA-X: {@code dW_t = U_t U_t^T dW_s V_t V_t^T}, the orthogonal projection of the source
 *       update onto the target weight's top-k left and right singular subspaces.
 *   <li>Cross-LoRA: LoRA-Align takes rank-k SVDs of both weights and the Frobenius-optimal linear
 *       maps between their bases, {@code T_U = argmin_T ||T U_s - U_t||_F = U_t U_s^T} (U_s has
 *       orthonormal columns, so its pseudo-inverse is U_s^T) and likewise {@code T_V = V_t V_s^T};
 *       the dimensions of source and target may differ. LoRA-Shift maps the update,
 *       {@code dW_t = T_U dW_s T_V^T = U_t (U_s^T dW_s V_s) V_t^T}. Singular vectors have
 *       arbitrary signs, which would make T_U arbitrary: {@link #alignSigns} fixes the target's
 *       pair signs against the source's on a side whose dimension they share.
 * </ul>
 *
 * <p>Both are {@code dW_t = P (Q_in^T dW_s R_in) R_out^T} for orthonormal bases, so
 * {@link #project} computes them from the rank-r factors through a k x k core, and re-factors the
 * result into rank-r factors by the core's SVD.
 */
public final class Subspaces {
  private Subspaces() {}

  /** LoRA-X on a dense update: {@code U U^T dW V V^T} with the target's (truncated) SVD. */
  public static NDArray loraXDense(NDArray dw, Svd target) {
    NDArray u = target.u();
    NDArray v = target.v();
    return u.matMul(u.transpose().matMul(dw).matMul(v)).matMul(v.transpose());
  }

  /**
   * The subspace similarity of two decompositions of same-shaped matrices (LoRA-X's skip test):
   * {@code (||U_a^T U_b||_F^2 + ||V_a^T V_b||_F^2) / (2k)}, k the smaller rank. Each term is the
   * sum of squared cosines of the principal angles between the two k-dimensional subspaces, so
   * the value is 1 for equal subspaces, 0 for orthogonal ones, and about k/n for random ones in
   * n dimensions.
   */
  public static double overlap(Svd a, Svd b) {
    int k = Math.min(a.rank(), b.rank());
    Svd x = a.truncate(k);
    Svd y = b.truncate(k);
    double left = squaredNorm(x.u().transpose().matMul(y.u()));
    double right = squaredNorm(x.vt().matMul(y.v()));
    return (left + right) / (2.0 * k);
  }

  /**
   * Cross-LoRA's similarity (dimension-free): the cosine between the two top-k singular value
   * spectra, {@code s_a . s_b / (|s_a| |s_b|)} over the first k = min rank values. LoRA-Align
   * pairs basis vectors by singular value order, which is meaningful when the spectra agree.
   */
  public static double spectralCosine(Svd a, Svd b) {
    int k = Math.min(a.rank(), b.rank());
    double[] x = a.s().get(":" + k).toType(DataType.FLOAT64, false).toDoubleArray();
    double[] y = b.s().get(":" + k).toType(DataType.FLOAT64, false).toDoubleArray();
    double xy = 0;
    double xx = 0;
    double yy = 0;
    for (int i = 0; i < k; i++) {
      xy += x[i] * y[i];
      xx += x[i] * x[i];
      yy += y[i] * y[i];
    }
    return xx == 0 || yy == 0 ? 0 : xy / Math.sqrt(xx * yy);
  }

  /**
   * The target decomposition with each pair's sign chosen to agree with the source's pair of the
   * same index: on the input side ({@code d_i = sign(v_s,i . v_t,i)}) when both have the same
   * input dimension, else on the output side when that one is shared; with no shared dimension
   * the canonical signs of {@link Linalg} stand. Truncates both to the smaller rank.
   */
  public static Svd alignSigns(Svd source, Svd target) {
    int k = Math.min(source.rank(), target.rank());
    Svd s = source.truncate(k);
    Svd t = target.truncate(k);
    NDArray dots;
    if (s.vt().getShape().get(1) == t.vt().getShape().get(1)) {
      dots = s.vt().mul(t.vt()).sum(new int[] {1});
    } else if (s.u().getShape().get(0) == t.u().getShape().get(0)) {
      dots = s.u().mul(t.u()).sum(new int[] {0});
    } else {
      return t;
    }
    NDArray signs = dots.gte(0).toType(DataType.FLOAT64, false).mul(2).sub(1);
    return t.flip(signs);
  }

  /**
   * LoRA-Align's maps {@code {T_U (m_t, m_s), T_V (n_t, n_s)}} = {@code {U_t U_s^T, V_t V_s^T}}
   * for sign-aligned decompositions of equal rank (see {@link #alignSigns}).
   */
  public static NDArray[] alignmentMaps(Svd source, Svd alignedTarget) {
    return new NDArray[] {alignedTarget.u().matMul(source.u().transpose()),
        alignedTarget.v().matMul(source.vt())};
  }

  /** The result of {@link #project}: the rank-r factors and the Frobenius norm of their product. */
  public record Projected(LowRank factors, double norm, int rank) {}

  /**
   * {@code dW_out = uOut (uIn^T dW vIn) vOut^T} from dW's factors, re-factored to rank {@code r}:
   * with the core's SVD {@code C = Uc Sc Vc^T}, {@code b = uOut Uc_r Sc_r^(1/2)} and
   * {@code a = Sc_r^(1/2) Vc_r^T vOut^T}, so {@code b a = dW_out} exactly when rank(C) <= r
   * (always, as rank(C) <= rank(dW)). When C has fewer than r values the rest are zero.
   *
   * @param uIn (out_s, k) and vIn (in_s, k): the bases dW is read in
   * @param uOut (out_t, k) and vOut (in_t, k): the bases the result is written in
   */
  public static Projected project(LowRank dw, NDArray uIn, NDArray vIn, NDArray uOut,
      NDArray vOut, int r) {
    NDArray core = uIn.transpose().matMul(dw.b()).matMul(dw.a().matMul(vIn)); // (k, k)
    Svd c = Linalg.svd(core);
    int kept = Math.min(r, c.rank());
    NDArray root = c.s().get(":" + kept).sqrt();
    NDArray b = uOut.matMul(c.u().get(":, :" + kept).mul(root.reshape(1, -1)));
    NDArray a = c.vt().get(":" + kept + ", :").mul(root.reshape(-1, 1)).matMul(vOut.transpose());
    if (kept < r) {
      NDManager m = b.getManager();
      b = b.concat(m.zeros(new Shape(b.getShape().get(0), r - kept), DataType.FLOAT64), 1);
      a = a.concat(m.zeros(new Shape(r - kept, a.getShape().get(1)), DataType.FLOAT64), 0);
    }
    double norm = Math.sqrt(squaredNorm(c.s()));
    return new Projected(new LowRank(b, a), norm, countPositive(c.s(), kept));
  }

  /** LoRA-X from factors: {@link #project} with the target's bases on both sides. */
  public static Projected loraX(LowRank dw, Svd target, int r) {
    NDArray v = target.v();
    return project(dw, target.u(), v, target.u(), v, r);
  }

  /** Cross-LoRA from factors: read in the source's bases, written in the aligned target's. */
  public static Projected crossLora(LowRank dw, Svd source, Svd target, int r) {
    Svd t = alignSigns(source, target);
    Svd s = source.truncate(t.rank());
    return project(dw, s.u(), s.v(), t.u(), t.v(), r);
  }

  static double squaredNorm(NDArray x) {
    try (NDArray sq = x.mul(x); NDArray sum = sq.sum()) {
      return sum.toType(DataType.FLOAT64, false).getDouble();
    }
  }

  private static int countPositive(NDArray s, int kept) {
    double[] v = s.toType(DataType.FLOAT64, false).toDoubleArray();
    double tol = v.length == 0 ? 0 : v[0] * 1e-12;
    int n = 0;
    for (int i = 0; i < kept; i++) {
      if (v[i] > tol) {
        n++;
      }
    }
    return n;
  }
}
