package org.loratransplant.discriminate;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import java.util.Set;
import org.loratransplant.task.PromptTemplate;

/**
 * How the discriminator is built, trained and applied. Every check names the configuration key
 * under {@code lt.translora.discriminator} that holds the bad value.
 *
 * @param rank the LoRA rank r (q_proj and v_proj are adapted, no dropout)
 * @param alpha the LoRA alpha; the update is scaled by alpha / r
 * @param promptTemplate the row as a prompt, with {@code {query}} and {@code {answer}}; it should
 *     end on punctuation so the label's leading space starts a new piece
 * @param realLabel the response meaning "real" (with its leading space, e.g. {@code " real"})
 * @param syntheticLabel the response meaning "synthetic"; must tokenise differently from realLabel
 * @param filter which scored rows are kept (top fraction or threshold)
 * @param seed seeds the LoRA initialisation and the trainer's shuffles
 */
public record DiscriminatorSettings(int rank, double alpha, double learningRate, int epochs,
    int batchSize, String promptTemplate, String realLabel, String syntheticLabel, Filter filter,
    long seed) {
  public static final String KEY_PREFIX = "lt.translora.discriminator.";
  public static final String DEFAULT_TEMPLATE = "Q: {query}\nA: {answer}\nReal or synthetic?";

  public DiscriminatorSettings {
    if (rank < 1) {
      throw bad("rank", "must be >= 1", rank);
    }
    if (!(alpha > 0) || Double.isInfinite(alpha)) {
      throw bad("alpha", "must be a positive number", alpha);
    }
    if (!(learningRate > 0) || Double.isInfinite(learningRate)) {
      throw bad("learning-rate", "must be a positive number", learningRate);
    }
    if (epochs < 1) {
      throw bad("epochs", "must be >= 1", epochs);
    }
    if (batchSize < 1) {
      throw bad("batch-size", "must be >= 1", batchSize);
    }
    if (promptTemplate == null || !promptTemplate.contains("{query}")) {
      throw bad("prompt-template", "must contain {query}", promptTemplate);
    }
    try {
      new PromptTemplate("discriminator", promptTemplate).check(Set.of("query", "answer"));
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(KEY_PREFIX + "prompt-template: " + e.getMessage(), e);
    }
    if (realLabel == null || realLabel.isBlank()) {
      throw bad("real-label", "must not be blank", realLabel);
    }
    if (syntheticLabel == null || syntheticLabel.isBlank()) {
      throw bad("synthetic-label", "must not be blank", syntheticLabel);
    }
    if (realLabel.equals(syntheticLabel)) {
      throw bad("synthetic-label", "must differ from real-label", syntheticLabel);
    }
    if (filter == null) {
      throw new IllegalArgumentException("set one of " + KEY_PREFIX + "keep-fraction and "
          + KEY_PREFIX + "threshold");
    }
  }

  /** Rank 8, alpha 16, lr 5e-3, 3 epochs, batch 8, labels " real" / " synthetic", keep half. */
  public static DiscriminatorSettings defaults() {
    return new DiscriminatorSettings(8, 16, 5e-3, 3, 8, DEFAULT_TEMPLATE, " real", " synthetic",
        new Filter.TopFraction(0.5), 42);
  }

  /** The prompt template, checked. */
  public PromptTemplate template() {
    return new PromptTemplate("discriminator", promptTemplate);
  }

  /**
   * Reads {@code lt.translora.discriminator} from {@code root} (the whole run's config).
   * Exactly one of {@code keep-fraction} and {@code threshold} must be set.
   */
  public static DiscriminatorSettings from(Config root) {
    String path = KEY_PREFIX.substring(0, KEY_PREFIX.length() - 1);
    if (!root.hasPath(path)) {
      throw new IllegalArgumentException(path + " is missing");
    }
    Config c = root.getConfig(path);
    boolean hasFraction = c.hasPath("keep-fraction");
    boolean hasThreshold = c.hasPath("threshold");
    if (hasFraction == hasThreshold) {
      throw new IllegalArgumentException("set exactly one of " + KEY_PREFIX + "keep-fraction and "
          + KEY_PREFIX + "threshold" + (hasFraction ? " (both are set)" : " (neither is set)"));
    }
    try {
      Filter filter = hasFraction ? new Filter.TopFraction(c.getDouble("keep-fraction"))
          : new Filter.Threshold(c.getDouble("threshold"));
      return new DiscriminatorSettings(c.getInt("rank"), c.getDouble("alpha"),
          c.getDouble("learning-rate"), c.getInt("epochs"), c.getInt("batch-size"),
          c.getString("prompt-template"), c.getString("real-label"),
          c.getString("synthetic-label"), filter, c.getLong("seed"));
    } catch (ConfigException e) {
      // typesafe names the key relative to the section; say where it lives
      throw new IllegalArgumentException(path + ": " + e.getMessage(), e);
    }
  }

  private static IllegalArgumentException bad(String key, String rule, Object value) {
    return new IllegalArgumentException(KEY_PREFIX + key + " " + rule + ", got "
        + (value instanceof String ? "'" + value + "'" : value));
  }
}
