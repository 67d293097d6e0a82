package org.loratransplant.transfer;

/**
 * How to transfer.
 *
 * @param rank the subspace rank k of the truncated SVDs; 0 picks {@link #defaultRank} per module.
 *     Always clipped to the smaller side of each weight.
 * @param threshold modules whose similarity is below it are skipped (LoRA-X: the subspace
 *     overlap of {@link Subspaces#overlap}; Cross-LoRA: {@link Subspaces#spectralCosine});
 *     direct reuse ignores it (it copies by shape alone)
 * @param seed seeds the randomised SVDs of large weights
 */
public record TransferSettings(Method method, int rank, double threshold, long seed) {
  /** The default subspace rank cap. */
  public static final int DEFAULT_RANK_CAP = 64;
  /** The default threshold: the one the seed experiment used. */
  public static final double DEFAULT_THRESHOLD = 0.1;

  public TransferSettings {
    if (method == null) {
      throw new IllegalArgumentException("method is required");
    }
    if (rank < 0) {
      throw new IllegalArgumentException("rank must be positive (or 0 for the default), got "
          + rank);
    }
    if (!(threshold >= 0 && threshold <= 1)) {
      throw new IllegalArgumentException("similarity threshold must be in [0, 1], got "
          + threshold);
    }
  }

  public static TransferSettings of(Method method) {
    return new TransferSettings(method, 0, DEFAULT_THRESHOLD, 0);
  }

  /**
   * The default k for a weight whose smallest side is {@code minDim}: {@code min(64, minDim / 2)}
   * (at least 1). Half the smaller side, so that on small models the projection is a real
   * truncation (at full rank a square weight's projection is the identity), capped at 64 so that
   * 7B-sized weights take a randomised SVD of tractable rank.
   */
  public static int defaultRank(int minDim) {
    return Math.max(1, Math.min(DEFAULT_RANK_CAP, minDim / 2));
  }

  /** The k used for a module whose weights' smallest side is {@code minDim}. */
  public int rankFor(int minDim) {
    return rank == 0 ? defaultRank(minDim) : Math.min(rank, minDim);
  }
}
