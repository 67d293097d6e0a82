package org.loratransplant.pipeline.generate;

import java.io.Serializable;
import org.loratransplant.model.Precision;
import org.loratransplant.pipeline.ModelSpec;

/**
 * What the synthetic pool depends on (the generate and score stages). Serializable: the stages
 * ship it to executors.
 *
 * @param queryModel the model that writes the queries: the source model (with the expert's
 *     adapter: TiTok) or the target base (TransLoRA); the expert always writes the answers
 * @param queryAdapter the query writer's adapter, or null for a bare base
 * @param poolSize N: de-duplicated samples the pool should reach
 * @param maxRounds generation goes on in rounds of N samples until the de-duplicated pool holds N
 *     (the authors' code runs up to 50)
 * @param precision the number format of the expert's and the query writer's products
 */
public record PoolSettings(String sourceModel, String sourceAdapter, String queryModel,
    String queryAdapter, int poolSize, int maxRounds, boolean dedupRouge, double rougeThreshold,
    double temperature, double topP, int maxQueryTokens, int maxResponseTokens,
    int generateBatch, int scoreBatch, int partitions, long seed, String device,
    String answerTemplate, String exampleTemplate, String queryTemplate, Precision precision)
    implements Serializable {

  public PoolSettings {
    if (poolSize < 1 || maxRounds < 1) {
      throw new IllegalArgumentException("pool size and generation.max-rounds must be >= 1");
    }
    if (!(topP > 0 && topP <= 1)) {
      throw new IllegalArgumentException("generation.top-p must be in (0, 1], got " + topP);
    }
    if (!(temperature >= 0)) {
      throw new IllegalArgumentException("generation.temperature must be >= 0, got "
          + temperature);
    }
  }

  /** The source expert (base + adapter): answers, and scores as expert and amateur. */
  public ModelSpec expert() {
    return new ModelSpec(sourceModel, sourceAdapter, device, precision);
  }

  /** The model that writes the queries. */
  public ModelSpec querier() {
    return new ModelSpec(queryModel, queryAdapter, device, precision);
  }

  /** Whether the expert itself writes the queries (TiTok) rather than another model. */
  public boolean expertQueries() {
    return querier().equals(expert());
  }
}
