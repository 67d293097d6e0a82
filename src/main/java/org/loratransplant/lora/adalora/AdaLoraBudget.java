package org.loratransplant.lora.adalora;

import com.typesafe.config.Config;
import java.io.Serializable;
import org.loratransplant.lora.LoraConfig;

/**
 * The {@code lt.adalora} settings that do not depend on the run's length: the budget schedule's
 * fractions and PEFT's other fields. {@link #config} turns them into an {@link AdaLoraConfig}
 * once the number of steps is known (tinit and tfinal are fractions of it).
 */
public record AdaLoraBudget(double dropout, double tinitFraction, double tfinalFraction,
    int deltaT, double beta1, double beta2, double orthRegWeight) implements Serializable {

  /** From the {@code lt.adalora} section. */
  public static AdaLoraBudget from(Config a) {
    return new AdaLoraBudget(a.getDouble("dropout"), a.getDouble("tinit-fraction"),
        a.getDouble("tfinal-fraction"), a.getInt("delta-t"), a.getDouble("beta1"),
        a.getDouble("beta2"), a.getDouble("orth-reg-weight"));
  }

  /**
   * The adapter's config: {@code initR} triplets per module pruned to a budget of
   * {@code targetR} on average; alpha, target modules and layers from {@code lora}.
   */
  public AdaLoraConfig config(LoraConfig lora, int initR, int targetR, int totalSteps) {
    int tinit = (int) Math.round(tinitFraction * totalSteps);
    int tfinal = (int) Math.round(tfinalFraction * totalSteps);
    return new AdaLoraConfig(initR, targetR, lora.alpha(), dropout, lora.targetModules(),
        lora.layersToTransform(), tinit, tfinal, deltaT, beta1, beta2, orthRegWeight,
        totalSteps, lora.baseModel());
  }
}
