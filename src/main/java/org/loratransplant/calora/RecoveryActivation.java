package org.loratransplant.calora;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.Activation;
import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * The non-linearity {@code sigma} of a recovery module {@code sigma(x D) U}. CA-LoRA's paper
 * leaves it as "a non-linear activation"; sigmoid is the default here (bounded, so a recovery
 * module cannot blow up the residual stream of a 4-bit base), the others are for ablation.
 */
public enum RecoveryActivation {
  SIGMOID, TANH, RELU, SILU;

  public NDArray apply(NDArray x) {
    return switch (this) {
      case SIGMOID -> Activation.sigmoid(x);
      case TANH -> Activation.tanh(x);
      case RELU -> Activation.relu(x);
      case SILU -> x.mul(Activation.sigmoid(x));
    };
  }

  /** The same function on one value (tests, and the file's documentation). */
  public double apply(double x) {
    return switch (this) {
      case SIGMOID -> 1 / (1 + Math.exp(-x));
      case TANH -> Math.tanh(x);
      case RELU -> Math.max(0, x);
      case SILU -> x / (1 + Math.exp(-x));
    };
  }

  public String id() {
    return name().toLowerCase(Locale.ROOT);
  }

  public static RecoveryActivation parse(String s) {
    for (RecoveryActivation a : values()) {
      if (a.id().equals(s)) {
        return a;
      }
    }
    throw new IllegalArgumentException("unknown recovery activation '" + s + "' ("
        + Arrays.stream(values()).map(RecoveryActivation::id).collect(Collectors.joining(", "))
        + ")");
  }
}
