package org.loratransplant.lora.adalora;

import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import org.loratransplant.model.Projection;

/**
 * An AdaLoRA's shape and schedule, as PEFT's {@code AdaLoraConfig} defines them (peft 0.21).
 *
 * @param initR triplets per adapted module at the start ({@code init_r})
 * @param targetR average triplets per module after the budget schedule ({@code target_r})
 * @param alpha PEFT's {@code lora_alpha}; AdaLoRA scales by {@code alpha / (ranknum + 1e-5)}
 * @param tinit warm-up steps before any pruning
 * @param tfinal final steps at the target budget
 * @param deltaT steps between budget allocations
 * @param beta1 EMA factor of the smoothed sensitivity
 * @param beta2 EMA factor of the uncertainty
 * @param orthRegWeight weight of the orthogonality regulariser
 * @param totalStep training steps the schedule spans
 * @param baseModel recorded as {@code base_model_name_or_path}
 */
public record AdaLoraConfig(int initR, int targetR, double alpha, double dropout,
    Set<Projection> targetModules, List<Integer> layersToTransform, int tinit, int tfinal,
    int deltaT, double beta1, double beta2, double orthRegWeight, int totalStep,
    String baseModel) {

  public AdaLoraConfig {
    if (initR <= 0) {
      throw new IllegalArgumentException("init_r must be positive, got " + initR);
    }
    if (targetR < 0 || targetR > initR) {
      throw new IllegalArgumentException("target_r must be in [0, init_r=" + initR + "], got "
          + targetR);
    }
    if (!(alpha > 0)) {
      throw new IllegalArgumentException("lora_alpha must be positive, got " + alpha);
    }
    if (!(dropout >= 0 && dropout < 1)) {
      throw new IllegalArgumentException("lora_dropout must be in [0, 1), got " + dropout);
    }
    if (targetModules.isEmpty()) {
      throw new IllegalArgumentException("target_modules is empty");
    }
    if (!(beta1 > 0 && beta1 < 1) || !(beta2 > 0 && beta2 < 1)) {
      throw new IllegalArgumentException("beta1 and beta2 must be in (0, 1), got " + beta1
          + " and " + beta2);
    }
    if (orthRegWeight < 0) {
      throw new IllegalArgumentException("orth_reg_weight must be >= 0, got " + orthRegWeight);
    }
    if (deltaT <= 0) {
      throw new IllegalArgumentException("deltaT must be positive, got " + deltaT);
    }
    targetModules = java.util.Collections.unmodifiableSet(EnumSet.copyOf(targetModules));
    layersToTransform = List.copyOf(layersToTransform);
    baseModel = baseModel == null ? "" : baseModel;
  }

  /** Whether {@code layer} gets adapters (empty {@code layersToTransform}: every layer). */
  public boolean adapts(int layer) {
    return layersToTransform.isEmpty() || layersToTransform.contains(layer);
  }

  /** The cubic schedule over {@code modules} adapted modules. */
  public BudgetSchedule schedule(int modules) {
    return new BudgetSchedule(initR * modules, targetR * modules, tinit, tfinal, totalStep,
        deltaT);
  }
}
