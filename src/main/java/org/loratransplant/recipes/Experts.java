package org.loratransplant.recipes;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.loratransplant.config.Settings;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.model.ModelConfig;
import org.loratransplant.pipeline.ModelDirs;
import org.loratransplant.pipeline.expert.ExpertTraining;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** The source expert a transplant starts from: checked, or trained first when it is missing. */
final class Experts {
  private static final Logger LOG = LoggerFactory.getLogger(Experts.class);

  private Experts() {}

  /** Both model directories hold a config and a tokenizer (TiTok needs text). */
  static void checkModelDirs(TitokSettings s) {
    checkModelDir(s.sourceModel(), "source-model");
    checkModelDir(s.targetModel(), "target-model");
  }

  private static void checkModelDir(String dir, String key) {
    Path p;
    try {
      p = ModelDirs.local(dir);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("lt.titok." + key + " = " + dir + ": " + e.getMessage(),
          e);
    }
    checkModelDirAt(p, "lt.titok." + key + " = " + dir);
  }

  /**
   * The local directory {@code p} holds a config and a tokenizer (TiTok needs text), and the
   * config loads; every error starts with {@code shown} (the setting and its value).
   */
  static void checkModelDirAt(Path p, String shown) {
    if (!Files.isRegularFile(p.resolve("config.json"))) {
      throw new IllegalArgumentException(shown + ": not a model directory (no config.json)");
    }
    if (!Files.isRegularFile(p.resolve("tokenizer.json"))) {
      throw new IllegalArgumentException(shown + ": no tokenizer.json (TiTok needs text)");
    }
    try {
      ModelConfig.load(p);
    } catch (RuntimeException e) {
      throw new IllegalArgumentException(shown + ": " + e.getMessage(), e);
    }
  }

  /**
   * Trains the source expert first when its adapter does not exist and lt.titok.expert-conf
   * names a recipe for it (on the same task file), then checks that it fits the source model.
   */
  static void ensure(TitokSettings s, Path taskFile) {
    // A remote adapter must exist (the expert is only ever trained into a local directory).
    if (!ModelDirs.isRemote(s.sourceAdapter())
        && !PeftFormat.isAdapterDir(ModelDirs.local(s.sourceAdapter()))) {
      if (s.expertConf().isEmpty()) {
        throw new IllegalArgumentException("lt.titok.source-adapter = " + s.sourceAdapter()
            + ": no PEFT adapter there (and lt.titok.expert-conf is empty)");
      }
      LOG.info("source adapter {} missing: training it with {}", s.sourceAdapter(),
          s.expertConf());
      Settings expert = Settings.load(Path.of(s.expertConf()), List.of(
          "lt.task.file=" + taskFile, "lt.device=" + s.device()));
      ExpertTraining.plan(ModelDirs.local(s.sourceModel()), Path.of(s.sourceAdapter()), expert,
          false).execute();
    }
    ModelConfig base = ModelConfig.load(ModelDirs.local(s.sourceModel()));
    Path adapter;
    try {
      adapter = ModelDirs.local(s.sourceAdapter());
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("lt.titok.source-adapter = " + s.sourceAdapter() + ": "
          + e.getMessage(), e);
    }
    try (ai.djl.ndarray.NDManager m = ai.djl.ndarray.NDManager.newBaseManager(
        ai.djl.Device.cpu())) {
      PeftFormat.read(adapter, base, m).close();
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("lt.titok.source-adapter does not fit "
          + "lt.titok.source-model: " + e.getMessage(), e);
    }
  }
}
