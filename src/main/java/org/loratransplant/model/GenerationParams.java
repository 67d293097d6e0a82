package org.loratransplant.model;

/**
 * How to sample: {@code temperature == 0} is greedy (argmax); otherwise softmax at that
 * temperature restricted to the smallest set of tokens whose probability reaches {@code topP}.
 * Generation stops at {@code maxNewTokens}, at any of {@code eosIds} (not included in the output),
 * or at the model's context length.
 */
public record GenerationParams(int maxNewTokens, double temperature, double topP, int[] eosIds) {

  public GenerationParams {
    if (maxNewTokens < 0) {
      throw new IllegalArgumentException("max new tokens must be >= 0, got " + maxNewTokens);
    }
    if (!(temperature >= 0) || Double.isInfinite(temperature)) {
      throw new IllegalArgumentException("temperature must be a finite number >= 0, got "
          + temperature);
    }
    if (!(topP > 0 && topP <= 1)) {
      throw new IllegalArgumentException("top-p must be in (0, 1], got " + topP);
    }
    eosIds = eosIds.clone();
  }

  public static GenerationParams greedy(int maxNewTokens, int[] eosIds) {
    return new GenerationParams(maxNewTokens, 0, 1, eosIds);
  }

  boolean isEos(int token) {
    for (int e : eosIds) {
      if (e == token) {
        return true;
      }
    }
    return false;
  }
}
