package org.loratransplant.pipeline;

import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.loratransplant.model.ModelConfig;
import org.loratransplant.tokenizer.TextTokenizer;

/**
 * Tokenizers (and the model config that names BOS/eos) cached once per executor JVM; the model
 * directory is resolved by {@link ModelDirs} (a remote one is copied to the local cache).
 */
public final class ExecutorTokenizers {
  private static final Map<String, Loaded> CACHE = new ConcurrentHashMap<>();

  private ExecutorTokenizers() {}

  /** A model directory's tokenizer, its first eos id and the model's positions. */
  public record Loaded(TextTokenizer tokenizer, int eos, int maxPositions) {}

  public static Loaded get(String modelDir) {
    return CACHE.computeIfAbsent(modelDir, d -> {
      Path dir = ModelDirs.local(d);
      ModelConfig c = ModelConfig.load(dir);
      if (c.eosTokenIds().isEmpty()) {
        throw new IllegalArgumentException(d + ": no eos_token_id in config.json or "
            + "generation_config.json");
      }
      return new Loaded(TextTokenizer.load(dir, c.bosTokenId()), c.eosTokenIds().get(0),
          c.maxPositions());
    });
  }
}
