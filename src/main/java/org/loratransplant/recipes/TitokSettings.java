package org.loratransplant.recipes;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import java.io.Serializable;
import org.loratransplant.config.Experiment;
import org.loratransplant.model.Precision;
import org.loratransplant.pipeline.ModelDirs;
import org.loratransplant.pipeline.ModelSpec;
import org.loratransplant.select.TokenSelection;

/**
 * The {@code lt.titok} section, validated. Serializable: stages ship it to executors.
 *
 * @param samples M, the number of samples kept for training
 * @param poolFactor N = poolFactor x M samples are generated
 * @param kPercent share of each kept sample's tokens that stays in the loss
 * @param perBatchSelection select tokens per training batch (the authors' code) instead of per
 *     sample (the paper)
 * @param maxFailedFraction the share of a stage's samples that may fail (recorded in the failed
 *     table and left out) before the stage fails
 * @param continuousBatching the generate stage refills a finished sample's cache row at once
 *     (default) instead of running static batches; the same tokens either way
 */
public record TitokSettings(String out, String sourceModel, String sourceAdapter,
    String expertConf, String targetModel, int samples, int poolFactor, double kPercent,
    boolean perBatchSelection, int selectionGroup, int seedExamples, boolean dedupRouge,
    double rougeThreshold, double temperature, double topP, int maxQueryTokens,
    int maxResponseTokens, int maxRounds, int generateBatch, int scoreBatch, int partitions,
    long seed, String device, String answerTemplate, String exampleTemplate,
    String queryTemplate, double maxFailedFraction, Precision precision,
    boolean continuousBatching)
    implements Serializable {

  public static TitokSettings from(Experiment exp) {
    Config t = exp.section("titok");
    try {
      String scope = t.getString("selection-scope");
      if (!scope.equals("sample") && !scope.equals("batch")) {
        throw new IllegalArgumentException("selection-scope must be sample or batch, got '"
            + scope + "'");
      }
      TitokSettings s = new TitokSettings(t.getString("out"), absolute(t.getString("source-model")),
          absolute(t.getString("source-adapter")), t.getString("expert-conf"),
          absolute(t.getString("target-model")),
          t.getInt("samples"), t.getInt("pool-factor"), t.getDouble("k-percent"),
          scope.equals("batch"), exp.trainer().batchSize(), t.getInt("seed-examples"),
          t.getBoolean("dedup.rouge-l"), t.getDouble("dedup.rouge-l-threshold"),
          t.getDouble("generation.temperature"), t.getDouble("generation.top-p"),
          t.getInt("generation.max-query-tokens"), t.getInt("generation.max-response-tokens"),
          t.getInt("generation.max-rounds"), t.getInt("generation.batch-size"),
          t.getInt("score-batch-size"),
          t.getInt("partitions"), exp.seed(), exp.device(),
          exp.answerPrompt().text(),
          exp.prompt("example", java.util.Set.of("input", "target")).text(),
          exp.prompt("query-generation", java.util.Set.of("examples")).text(),
          t.getDouble("max-failed-fraction"),
          Precision.parse(t.getString("precision"), "precision"),
          !t.hasPath("generation.continuous-batching")
              || t.getBoolean("generation.continuous-batching"));
      s.validate();
      return s;
    } catch (ConfigException | IllegalArgumentException e) {
      throw new IllegalArgumentException("lt.titok: " + e.getMessage(), e);
    }
  }

  /**
   * A local path made absolute on the driver, so that executors (whose working directory is
   * their own on a cluster) find the same directory; a URI with a scheme ({@code s3a://},
   * {@code hdfs://}) is kept as written, and so is a relative path found only in the driver's
   * Spark files directory ({@code spark-submit --archives}): see {@link ModelDirs#shippable}.
   */
  static String absolute(String path) {
    return ModelDirs.shippable(path);
  }

  private void validate() {
    if (samples < 1) {
      throw new IllegalArgumentException("samples (M) must be >= 1, got " + samples);
    }
    if (poolFactor < 1) {
      throw new IllegalArgumentException("pool-factor must be >= 1, got " + poolFactor);
    }
    TokenSelection.checkK(kPercent);
    if (seedExamples < 1) {
      throw new IllegalArgumentException("seed-examples must be >= 1, got " + seedExamples);
    }
    if (partitions < 1 || generateBatch < 1 || scoreBatch < 1) {
      throw new IllegalArgumentException("partitions and batch sizes must be >= 1");
    }
    if (!(topP > 0 && topP <= 1)) {
      throw new IllegalArgumentException("generation.top-p must be in (0, 1], got " + topP);
    }
    if (maxRounds < 1) {
      throw new IllegalArgumentException("generation.max-rounds must be >= 1, got " + maxRounds);
    }
    if (!(rougeThreshold > 0 && rougeThreshold <= 1)) {
      throw new IllegalArgumentException("dedup.rouge-l-threshold must be in (0, 1]");
    }
    if (!(maxFailedFraction >= 0 && maxFailedFraction <= 1)) {
      throw new IllegalArgumentException("max-failed-fraction must be in [0, 1], got "
          + maxFailedFraction);
    }
  }

  public int poolSize() {
    return Math.multiplyExact(samples, poolFactor);
  }

  /** The source expert's spec (base + adapter). */
  public ModelSpec expert() {
    return new ModelSpec(sourceModel, sourceAdapter, device, precision);
  }
}
