package org.loratransplant.pipeline.train;

import org.loratransplant.lora.LoraConfig;
import org.loratransplant.pipeline.ModelSpec;
import org.loratransplant.train.TrainerConfig;

/**
 * What the train stage depends on: the target, its fresh LoRA, the trainer and the objective.
 *
 * @param objective {@code ce}: masked weighted cross-entropy (TiTok, SFT); {@code kd}: CE plus
 *     {@code kdWeight} x KL(teacher || student) at {@code kdTemperature}, the teacher being the
 *     source expert (its vocabulary carried over by MinED when the tokenizers differ)
 * @param teacher the source expert, for {@code kd}
 * @param adalora train an AdaLoRA instead of a LoRA: {@code initR} triplets per module pruned to
 *     {@code lora.r()} (the LoRA's final budget); null: a LoRA
 */
public record TrainSettings(String targetModel, LoraConfig lora, TrainerConfig trainer,
    String objective, double kdWeight, double kdTemperature, ModelSpec teacher, long seed,
    String device, AdaLora adalora) implements java.io.Serializable {

  /** AdaLoRA's budget and starting rank. */
  public record AdaLora(org.loratransplant.lora.adalora.AdaLoraBudget budget, int initR)
      implements java.io.Serializable {}

  public TrainSettings {
    if (!objective.equals("ce") && !objective.equals("kd")) {
      throw new IllegalArgumentException("objective must be ce or kd, got '" + objective + "'");
    }
    if (adalora != null && !objective.equals("ce")) {
      throw new IllegalArgumentException("an AdaLoRA trains on the masked CE only, got objective '"
          + objective + "'");
    }
    if (!(kdWeight >= 0) || !(kdTemperature > 0)) {
      throw new IllegalArgumentException("kd.weight must be >= 0 and kd.temperature > 0");
    }
  }

  /** The same settings with another learning rate (a tuning candidate). */
  public TrainSettings withLearningRate(double lr) {
    TrainerConfig t = trainer;
    return new TrainSettings(targetModel, lora, new TrainerConfig(lr, t.epochs(), t.batchSize(),
        t.weightDecay(), t.warmupRatio(), t.maxGradNorm(), t.gradAccumulation(), t.seed(),
        t.neftuneAlpha(), t.normaliser(), t.checkpointEvery(), t.logEvery()), objective,
        kdWeight, kdTemperature, teacher, seed, device, adalora);
  }
}
