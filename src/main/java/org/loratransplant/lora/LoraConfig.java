package org.loratransplant.lora;

import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import org.loratransplant.model.ModelConfig;
import org.loratransplant.model.Projection;

/**
 * A LoRA's shape and scaling, as PEFT's {@code LoraConfig} defines them. Validated on
 * construction.
 *
 * @param layersToTransform layers that get adapters; empty means every layer
 * @param baseModel the base model's name or path, recorded in {@code adapter_config.json}
 */
public record LoraConfig(int r, double alpha, double dropout, Set<Projection> targetModules,
    List<Integer> layersToTransform, boolean useRslora, String baseModel)
    implements java.io.Serializable {

  public LoraConfig {
    if (r <= 0) {
      throw new IllegalArgumentException("LoRA rank r must be positive, got " + r);
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
    // An EnumSet iterates in declaration order in every JVM (Set.copyOf's order varies per JVM,
    // and toString() feeds checkpoint fingerprints: a resumed run in another JVM was refused).
    targetModules = java.util.Collections.unmodifiableSet(EnumSet.copyOf(targetModules));
    layersToTransform = List.copyOf(layersToTransform);
    baseModel = baseModel == null ? "" : baseModel;
  }

  /** The paper's defaults (r 8, alpha 8, dropout 0.05 on q_proj and v_proj). */
  public static LoraConfig defaults(String baseModel) {
    return new LoraConfig(8, 8, 0.05, EnumSet.of(Projection.Q_PROJ, Projection.V_PROJ),
        List.of(), false, baseModel);
  }

  /** {@code alpha / r}, or {@code alpha / sqrt(r)} with rsLoRA. */
  public double scaling() {
    return useRslora ? alpha / Math.sqrt(r) : alpha / r;
  }

  /** Whether {@code layer} gets adapters. */
  public boolean adapts(int layer) {
    return layersToTransform.isEmpty() || layersToTransform.contains(layer);
  }

  /** Checks the layer indices against a base model. */
  public void checkAgainst(ModelConfig base) {
    for (int l : layersToTransform) {
      if (l < 0 || l >= base.numLayers()) {
        throw new IllegalArgumentException("layers_to_transform has layer " + l + " but the base "
            + "model has " + base.numLayers() + " layers");
      }
    }
  }

  public LoraConfig withBaseModel(String base) {
    return new LoraConfig(r, alpha, dropout, targetModules, layersToTransform, useRslora, base);
  }
}
