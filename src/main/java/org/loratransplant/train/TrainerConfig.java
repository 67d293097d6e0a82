package org.loratransplant.train;

/**
 * Training hyper-parameters; {@link #paperDefaults()} are TiTok's (lr 5e-5, 2 epochs, batch 4,
 * weight decay 0.01, warm-up ratio 0.1), with the authors' gradient clipping at 0.3.
 *
 * @param gradAccumulation micro-batches per optimizer step
 * @param neftuneAlpha NEFTune noise scale; 0 disables it
 * @param normaliser how the weighted token loss of a batch is normalised
 * @param checkpointEvery optimizer steps between resumable checkpoints; 0 disables them
 */
public record TrainerConfig(double learningRate, int epochs, int batchSize, double weightDecay,
    double warmupRatio, double maxGradNorm, int gradAccumulation, long seed, double neftuneAlpha,
    LossNormaliser normaliser, int checkpointEvery, int logEvery)
    implements java.io.Serializable {

  /** {@code sum(w * ce) / N} where N is the weight sum or the number of response tokens. */
  public enum LossNormaliser {
    /** Weighted mean: the paper's loss over selected tokens, averaged over them. */
    WEIGHT_SUM,
    /**
     * Divides by the batch's response-token count, so a weight w scales a token's contribution
     * by w absolutely (the authors' code divides by answer tokens x k).
     */
    RESPONSE_TOKENS
  }

  public TrainerConfig {
    if (!(learningRate > 0)) {
      throw new IllegalArgumentException("learning rate must be positive, got " + learningRate);
    }
    if (epochs <= 0 || batchSize <= 0 || gradAccumulation <= 0) {
      throw new IllegalArgumentException("epochs, batch size and gradient accumulation must be "
          + "positive (got " + epochs + ", " + batchSize + ", " + gradAccumulation + ")");
    }
    if (!(warmupRatio >= 0 && warmupRatio < 1)) {
      throw new IllegalArgumentException("warm-up ratio must be in [0, 1), got " + warmupRatio);
    }
    if (weightDecay < 0 || maxGradNorm < 0 || neftuneAlpha < 0) {
      throw new IllegalArgumentException("weight decay, max grad norm and NEFTune alpha must be "
          + ">= 0");
    }
  }

  public static TrainerConfig paperDefaults() {
    return new TrainerConfig(5e-5, 2, 4, 0.01, 0.1, 0.3, 1, 42, 0, LossNormaliser.WEIGHT_SUM, 0,
        10);
  }
}
