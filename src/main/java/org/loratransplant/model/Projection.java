package org.loratransplant.model;

import java.util.Arrays;
import java.util.Locale;

/** The seven linear projections of a decoder layer, named as PEFT's {@code target_modules}. */
public enum Projection {
  Q_PROJ("self_attn"),
  K_PROJ("self_attn"),
  V_PROJ("self_attn"),
  O_PROJ("self_attn"),
  GATE_PROJ("mlp"),
  UP_PROJ("mlp"),
  DOWN_PROJ("mlp");

  private final String block;

  Projection(String block) {
    this.block = block;
  }

  /** The module name as Hugging Face spells it, e.g. {@code q_proj}. */
  public String moduleName() {
    return name().toLowerCase(Locale.ROOT);
  }

  /** The weight's key prefix in a checkpoint, e.g. {@code model.layers.3.self_attn.q_proj}. */
  public String keyPrefix(int layer) {
    return "model.layers." + layer + "." + block + "." + moduleName();
  }

  /** Input features of this projection's weight. */
  public int inFeatures(ModelConfig c) {
    return switch (this) {
      case O_PROJ -> c.numHeads() * c.headDim();
      case DOWN_PROJ -> c.intermediateSize();
      default -> c.hiddenSize();
    };
  }

  /** Output features of this projection's weight. */
  public int outFeatures(ModelConfig c) {
    return switch (this) {
      case Q_PROJ -> c.numHeads() * c.headDim();
      case K_PROJ, V_PROJ -> c.numKvHeads() * c.headDim();
      case O_PROJ, DOWN_PROJ -> c.hiddenSize();
      case GATE_PROJ, UP_PROJ -> c.intermediateSize();
    };
  }

  /** Whether the checkpoint carries a bias for this projection under {@code config}. */
  public boolean hasBias(ModelConfig c) {
    return switch (this) {
      case Q_PROJ, K_PROJ, V_PROJ -> c.qkvBias();
      case O_PROJ -> c.oBias();
      default -> c.mlpBias();
    };
  }

  /** Parses a module name such as {@code v_proj}; unknown names return {@code null}. */
  public static Projection fromModuleName(String name) {
    return Arrays.stream(values()).filter(p -> p.moduleName().equals(name)).findFirst()
        .orElse(null);
  }
}
