package org.loratransplant.migrate;

import org.loratransplant.train.TrainerConfig;

/**
 * How each migration step is distilled.
 *
 * @param mseWeight weight of the MSE of the migrated-from layer's output hidden state (every
 *     position)
 * @param klWeight weight of {@code T^2 KL(teacher || student)} on the logits (every position)
 * @param klTemperature its temperature
 * @param ceWeight weight of the task cross-entropy on the answer tokens
 * @param dropout LoRA dropout of the student (0: distillation needs no noise)
 * @param trainer optimiser settings per step
 */
public record MigrationSettings(double mseWeight, double klWeight, double klTemperature,
    double ceWeight, double dropout, TrainerConfig trainer) {

  public MigrationSettings {
    if (mseWeight < 0 || klWeight < 0 || ceWeight < 0) {
      throw new IllegalArgumentException("migration loss weights must be >= 0, got mse "
          + mseWeight + ", kl " + klWeight + ", ce " + ceWeight);
    }
    if (mseWeight + klWeight + ceWeight == 0) {
      throw new IllegalArgumentException("at least one migration loss weight must be positive");
    }
  }

  /** Hidden-state MSE only, with {@code trainer}. */
  public static MigrationSettings mseOnly(TrainerConfig trainer) {
    return new MigrationSettings(1, 0, 1, 0, 0, trainer);
  }
}
