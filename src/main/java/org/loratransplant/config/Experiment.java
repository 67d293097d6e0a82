package org.loratransplant.config;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import java.nio.file.Path;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import org.loratransplant.eval.Evaluator;
import org.loratransplant.lora.LoraConfig;
import org.loratransplant.model.Projection;
import org.loratransplant.task.PromptTemplate;
import org.loratransplant.train.TrainerConfig;

/**
 * Typed views of the {@code lt} config sections. Each accessor validates and names the key on
 * error, so a bad conf/ file fails before any model is loaded.
 */
public final class Experiment {
  private final Config c;

  public Experiment(Settings settings) {
    this.c = settings.config();
  }

  public Config raw() {
    return c;
  }

  public String device() {
    return string("device");
  }

  public long seed() {
    return get(() -> c.getLong("seed"), "seed");
  }

  public LoraConfig lora(String baseModel) {
    Config l = section("lora");
    Set<Projection> targets = EnumSet.noneOf(Projection.class);
    for (String m : get(() -> l.getStringList("target-modules"), "lora.target-modules")) {
      Projection p = Projection.fromModuleName(m);
      if (p == null) {
        throw new IllegalArgumentException("lt.lora.target-modules: unknown module '" + m
            + "' (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)");
      }
      targets.add(p);
    }
    try {
      return new LoraConfig(l.getInt("r"), l.getDouble("alpha"), l.getDouble("dropout"), targets,
          l.getIntList("layers-to-transform"), l.getBoolean("use-rslora"), baseModel);
    } catch (ConfigException | IllegalArgumentException e) {
      throw new IllegalArgumentException("lt.lora: " + e.getMessage(), e);
    }
  }

  public TrainerConfig trainer() {
    Config t = section("train");
    try {
      String norm = t.getString("normaliser");
      TrainerConfig.LossNormaliser n = switch (norm) {
        case "weight-sum" -> TrainerConfig.LossNormaliser.WEIGHT_SUM;
        case "response-tokens" -> TrainerConfig.LossNormaliser.RESPONSE_TOKENS;
        default -> throw new IllegalArgumentException("normaliser must be weight-sum or "
            + "response-tokens, got '" + norm + "'");
      };
      return new TrainerConfig(t.getDouble("learning-rate"), t.getInt("epochs"),
          t.getInt("batch-size"), t.getDouble("weight-decay"), t.getDouble("warmup-ratio"),
          t.getDouble("max-grad-norm"), t.getInt("grad-accumulation"), seed(),
          t.getDouble("neftune-alpha"), n, t.getInt("checkpoint-every"), t.getInt("log-every"));
    } catch (ConfigException | IllegalArgumentException e) {
      throw new IllegalArgumentException("lt.train: " + e.getMessage(), e);
    }
  }

  public Path taskFile() {
    return Path.of(string("task.file"));
  }

  public double testFraction() {
    return get(() -> c.getDouble("task.test-fraction"), "task.test-fraction");
  }

  public long splitSeed() {
    return get(() -> c.getLong("task.split-seed"), "task.split-seed");
  }

  public PromptTemplate prompt(String name, Set<String> placeholders) {
    return new PromptTemplate(name, string("prompts." + name)).check(placeholders);
  }

  public PromptTemplate answerPrompt() {
    return prompt("answer", Set.of("input"));
  }

  public Evaluator.Settings evaluation() {
    String line = string("eval.answer-line");
    if (!line.equals("first") && !line.equals("last")) {
      throw new IllegalArgumentException("lt.eval.answer-line must be first or last, got '"
          + line + "'");
    }
    int maxNew = get(() -> c.getInt("eval.max-new-tokens"), "eval.max-new-tokens");
    if (maxNew < 1) {
      // 0 would generate empty answers and report exact match 0 as if the model were wrong.
      throw new IllegalArgumentException("lt.eval.max-new-tokens must be >= 1, got " + maxNew);
    }
    int batch = get(() -> c.getInt("eval.batch-size"), "eval.batch-size");
    if (batch < 1) {
      throw new IllegalArgumentException("lt.eval.batch-size must be >= 1, got " + batch);
    }
    return new Evaluator.Settings(answerPrompt(), maxNew, batch, line.equals("first"));
  }

  public Config section(String name) {
    return get(() -> c.getConfig(name), name);
  }

  public String string(String key) {
    return get(() -> c.getString(key), key);
  }

  public List<String> strings(String key) {
    return get(() -> c.getStringList(key), key);
  }

  private static <T> T get(java.util.function.Supplier<T> s, String key) {
    try {
      return s.get();
    } catch (ConfigException e) {
      throw new IllegalArgumentException("setting lt." + key + ": " + e.getMessage(), e);
    }
  }
}
