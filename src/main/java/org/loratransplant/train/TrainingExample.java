package org.loratransplant.train;

import java.util.Arrays;

/**
 * One training sequence: the prompt (context, never in the loss) and the response, each response
 * token with a loss weight in [0, 1] (TiTok's selected tokens 1, others 0; tokens carried across
 * tokenizers may get fractions).
 */
public record TrainingExample(int[] prompt, int[] response, float[] weights)
    implements java.io.Serializable {

  public TrainingExample {
    if (prompt.length == 0) {
      throw new IllegalArgumentException("a training example needs a non-empty prompt (BOS)");
    }
    if (weights.length != response.length) {
      throw new IllegalArgumentException(response.length + " response tokens but "
          + weights.length + " weights");
    }
    for (int i = 0; i < weights.length; i++) {
      if (!(weights[i] >= 0 && weights[i] <= 1)) {
        throw new IllegalArgumentException("weight " + i + " is " + weights[i]
            + ", outside [0, 1]");
      }
    }
  }

  /** Every response token weighted 1 (plain supervised fine-tuning). */
  public static TrainingExample full(int[] prompt, int[] response) {
    float[] w = new float[response.length];
    Arrays.fill(w, 1f);
    return new TrainingExample(prompt, response, w);
  }

  public int length() {
    return prompt.length + response.length;
  }
}
