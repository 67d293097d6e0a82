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
 * @param adapter what the target trains: {@code lora} or {@code adalora} (lt.adalora's budget,
 *     init_r = lt.lora.r)
 * @param compressTarget train and evaluate on a compressed copy of the target ({@code nf4}:
 *     QLoRA); empty: the target itself
 * @param modelSide a transfer onto a model derived from the source base instead of a target
 */
public record MethodSettings(String name, String queries, String sampleFilter,
    String tokenSelection, String structuralTokens, String objective, double kdWeight,
    double kdTemperature, boolean discriminator, String evaluateOnly, Tune tune,
    String transfer, String adapter, String compressTarget, ModelSide modelSide) {

  /** The model-side transfers: what moves the source adapter, onto which derived model. */
  public static final List<String> MODEL_SIDE_KINDS = List.of("", "inherit", "ca-lora",
      "migrate-layer");

  /**
   * A model-side transfer (lt.method.model-side): the source expert's adapter moved onto a
   * model derived from the source base, not onto one of the comparison's targets.
   *
   * @param kind {@code inherit} (the adapter as-is on the compressed source base),
   *     {@code ca-lora} (inherit + recovery modules, trained; CaLora) or {@code migrate-layer}
   *     (the top layer's LoRA distilled into the layer below; LayerMigration); empty: none
   * @param compress the compression of the source base for inherit and ca-lora, as
   *     {@code jobs/lt ca-lora --compress} spells one
   * @param distil ca-lora: add lt.calora.mse-weight x the hidden-state MSE against the
   *     uncompressed expert (CA-LoRA as published); false: task CE only
   */
  public record ModelSide(String kind, String compress, boolean distil) {
    public boolean enabled() {
      return !kind.isEmpty();
    }

    /** Inherit and ca-lora run on a compressed copy of the source base. */
    public boolean compressed() {
      return kind.equals("inherit") || kind.equals("ca-lora");
    }

    /** Whether its rows depend on the training seed (inherit trains nothing). */
    boolean seeded() {
      return kind.equals("ca-lora") || kind.equals("migrate-layer");
    }
  }

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
    return modelSide.enabled() ? modelSide.seeded() : evaluateOnly.isEmpty() && transfer.isEmpty();
  }

  private static void check(String key, String value, List<String> allowed) {
    if (!allowed.contains(value)) {
      throw new IllegalArgumentException(key + " must be one of " + allowed + ", got '" + value
          + "'");
    }
  }

  /** AdaLoRA's init_r for a method row: it prunes down to r, the LoRA rows' rank. */
  public static int initR(double factor, int r) {
    return (int) Math.round(factor * r);
  }

  /** A compression as {@code jobs/lt ca-lora --compress} spells it; the error names the key. */
  private static void level(String key, String spec) {
    try {
      org.loratransplant.calora.CompressionLevel.parse(spec);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(key + ": " + e.getMessage().replace("--compress ", ""),
          e);
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
      check("adapter", m.getString("adapter"), List.of("lora", "adalora"));
      String adapter = m.getString("adapter");
      String compressTarget = m.getString("compress-target");
      if (!compressTarget.isEmpty()) {
        level("compress-target", compressTarget);
      }
      Config ms = m.getConfig("model-side");
      ModelSide side = new ModelSide(ms.getString("kind"), ms.getString("compress"),
          ms.getBoolean("distil"));
      check("model-side.kind", side.kind(), MODEL_SIDE_KINDS);
      if (side.compressed()) {
        level("model-side.compress", side.compress());
      }
      boolean trains = only.isEmpty() && transfer.isEmpty() && !side.enabled();
      if (side.enabled() && (!only.isEmpty() || !transfer.isEmpty())) {
        throw new IllegalArgumentException("model-side.kind = " + side.kind() + " cannot be "
            + "combined with evaluate-only or transfer (it is a row of its own)");
      }
      if (!trains && (adapter.equals("adalora") || !compressTarget.isEmpty())) {
        throw new IllegalArgumentException("adapter = " + adapter + " and compress-target = '"
            + compressTarget + "' apply to a target that trains on the pool, not to "
            + "evaluate-only, transfer or model-side rows");
      }
      if (adapter.equals("adalora")) {
        if (!m.getString("objective").equals("ce")) {
          throw new IllegalArgumentException("adapter = adalora trains on the masked CE only: "
              + "objective must be ce, got '" + m.getString("objective") + "'");
        }
        double factor = exp.raw().getDouble("adalora.init-r-factor");
        int r = exp.raw().getInt("lora.r");
        if (!(factor > 1) || initR(factor, r) <= r) {
          throw new IllegalArgumentException("adapter = adalora needs lt.adalora.init-r-factor "
              + "> 1 with round(factor x lt.lora.r) > lt.lora.r, got " + factor + " x " + r);
        }
      }
      Config t = m.getConfig("tune");
      return new MethodSettings(m.getString("name"), queries, m.getString("sample-filter"),
          m.getString("token-selection"), m.getString("structural-tokens"),
          m.getString("objective"), m.getDouble("kd.weight"), m.getDouble("kd.temperature"),
          m.getBoolean("discriminator"), only, new Tune(t.getBoolean("enabled"),
          t.getDoubleList("k-percent"), t.getIntList("samples"), t.getDoubleList("learning-rate"),
          t.getDouble("validation-fraction")), transfer, adapter, compressTarget, side);
    } catch (ConfigException | IllegalArgumentException e) {
      throw new IllegalArgumentException("lt.method: " + e.getMessage(), e);
    }
  }
}
