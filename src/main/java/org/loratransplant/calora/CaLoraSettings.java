package org.loratransplant.calora;

import org.loratransplant.train.TrainerConfig;

/**
 * How CA-LoRA trains (lt.calora and lt.train).
 *
 * @param recoveryRank r_c of every recovery module
 * @param activation sigma of {@code sigma(x D) U}
 * @param mseWeight alpha: weight of the hidden-state MSE against the uncompressed base + LoRA
 *     in the distilled variant (every position of the text)
 * @param allLayers match every decoder layer's output (true) or only the last layer's
 * @param trainer optimiser settings (its seed is replaced by each run's seed)
 */
public record CaLoraSettings(int recoveryRank, RecoveryActivation activation, double mseWeight,
    boolean allLayers, TrainerConfig trainer) {

  public CaLoraSettings {
    if (recoveryRank <= 0) {
      throw new IllegalArgumentException("lt.calora.recovery-rank must be positive, got "
          + recoveryRank);
    }
    if (!(mseWeight > 0) || !Double.isFinite(mseWeight)) {
      throw new IllegalArgumentException("lt.calora.mse-weight must be positive and finite "
          + "(the CE-only variant is run beside it), got " + mseWeight);
    }
  }

  /** The trainer with {@code seed}. */
  public TrainerConfig trainer(long seed) {
    TrainerConfig t = trainer;
    return new TrainerConfig(t.learningRate(), t.epochs(), t.batchSize(), t.weightDecay(),
        t.warmupRatio(), t.maxGradNorm(), t.gradAccumulation(), seed, t.neftuneAlpha(),
        t.normaliser(), t.checkpointEvery(), t.logEvery());
  }
}
