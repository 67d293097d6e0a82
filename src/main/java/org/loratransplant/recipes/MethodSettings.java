package org.loratransplant.recipes;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import java.util.List;
import org.loratransplant.config.Experiment;

/**
 * The {@code lt.method} section: which transfer method a run applies to the shared pool. Every
 * method of the comparison (sft, kd, titok, translora, the ablations) is this section with other
 * values; see {@code lt.methods} in base.conf.
 *
 * @param name the method's name in reports
 * @param queries who writes the queries: {@code expert} (TiTok) or {@code target} (TransLoRA)
 * @param discriminator TransLoRA's filter: a discriminator LoRA trained on the source side (real
 *     task examples vs synthetic rows) keeps the samples it believes real
 * @param evaluateOnly no adapter is trained: {@code vanilla} (the target) or {@code expert} (the
 *     source with its adapter) as reference rows
 * @param tune choose k % and the learning rate per run on a validation split of the training data
 */
public record MethodSettings(String name, String queries, String sampleFilter,
    String tokenSelection, String structuralTokens, String objective, double kdWeight,
    double kdTemperature, boolean discriminator, String evaluateOnly, Tune tune,
    String transfer) {

  /** Candidates tried on the validation split; 100 % is always among the k candidates. */
  public record Tune(boolean enabled, List<Double> kPercent, List<Integer> samples,
      List<Double> learningRates, double validationFraction) {
    public Tune {
      kPercent = List.copyOf(kPercent);
      samples = List.copyOf(samples);
      learningRates = List.copyOf(learningRates);
      if (samples.stream().anyMatch(m -> m < 1)) {
        throw new IllegalArgumentException("tune.samples must be >= 1, got " + samples);
      }
      if (learningRates.stream().anyMatch(lr -> !(lr > 0))) {
        throw new IllegalArgumentException("tune.learning-rate must be > 0, got "
            + learningRates);
      }
      if (enabled && kPercent.isEmpty()) {
        throw new IllegalArgumentException("tune.k-percent is empty");
      }
      if (enabled && !(validationFraction > 0 && validationFraction < 1)) {
        throw new IllegalArgumentException("tune.validation-fraction must be in (0, 1), got "
            + validationFraction);
      }
    }
  }

  /** Whether the method's rows depend on the training seed (references and transfers do not). */
  public boolean seeded() {
    return evaluateOnly.isEmpty() && transfer.isEmpty();
  }

  private static void check(String key, String value, List<String> allowed) {
    if (!allowed.contains(value)) {
      throw new IllegalArgumentException(key + " must be one of " + allowed + ", got '" + value
          + "'");
    }
  }

  public static MethodSettings from(Experiment exp) {
    Config m = exp.section("method");
    try {
      String queries = m.getString("queries");
      if (!queries.equals("expert") && !queries.equals("target")) {
        throw new IllegalArgumentException("queries must be expert or target, got '" + queries
            + "'");
      }
      String only = m.getString("evaluate-only");
      if (!List.of("", "vanilla", "expert").contains(only)) {
        throw new IllegalArgumentException("evaluate-only must be empty, vanilla or expert, got '"
            + only + "'");
      }
      String transfer = m.getString("transfer");
      if (!transfer.isEmpty()) {
        org.loratransplant.transfer.Method.parse(transfer);
      }
      check("sample-filter", m.getString("sample-filter"),
          org.loratransplant.pipeline.select.SelectSettings.SAMPLE_FILTERS);
      check("token-selection", m.getString("token-selection"),
          org.loratransplant.pipeline.select.SelectSettings.TOKEN_MODES);
      check("structural-tokens", m.getString("structural-tokens"),
          org.loratransplant.pipeline.select.SelectSettings.STRUCTURAL);
      check("objective", m.getString("objective"), List.of("ce", "kd"));
      Config t = m.getConfig("tune");
      return new MethodSettings(m.getString("name"), queries, m.getString("sample-filter"),
          m.getString("token-selection"), m.getString("structural-tokens"),
          m.getString("objective"), m.getDouble("kd.weight"), m.getDouble("kd.temperature"),
          m.getBoolean("discriminator"), only, new Tune(t.getBoolean("enabled"),
          t.getDoubleList("k-percent"), t.getIntList("samples"), t.getDoubleList("learning-rate"),
          t.getDouble("validation-fraction")), transfer);
    } catch (ConfigException | IllegalArgumentException e) {
      throw new IllegalArgumentException("lt.method: " + e.getMessage(), e);
    }
  }
}
