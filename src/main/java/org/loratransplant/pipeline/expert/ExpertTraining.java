package org.loratransplant.pipeline.expert;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.typesafe.config.ConfigFactory;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.loratransplant.config.Experiment;
import org.loratransplant.config.Settings;
import org.loratransplant.eval.Reports;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.LoraConfig;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.model.Devices;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.pipeline.FaultInjection;
import org.loratransplant.task.Split;
import org.loratransplant.task.Task;
import org.loratransplant.task.TaskFiles;
import org.loratransplant.task.TaskPrompts;
import org.loratransplant.train.LoraTrainer;
import org.loratransplant.train.TrainerConfig;
import org.loratransplant.train.TrainingExample;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Fits a LoRA on a task's training split: how users make a source expert ({@code jobs/lt
 * train-lora}) and the TiTok job's stage 0 when its source adapter does not exist yet.
 * {@link #plan} validates everything cheap before a model is loaded; {@link Plan#execute} trains
 * (resuming from checkpoints) and writes the adapter, its settings and a summary atomically.
 */
public final class ExpertTraining {
  public static final String SUMMARY_FILE = "lt_train.json";
  private static final Logger LOG = LoggerFactory.getLogger(ExpertTraining.class);

  private ExpertTraining() {}

  /** A validated training job. */
  public record Plan(Path modelDir, Path out, Settings settings, Experiment experiment,
      TrainerConfig trainer, LoraConfig lora, Task task, Split split, String hash,
      boolean upToDate) {

    /** Trains and writes the adapter; returns the summary (null when already up to date). */
    public ObjectNode execute() {
      if (upToDate) {
        LOG.info("{} already holds an adapter trained with these settings", out);
        return null;
      }
      Path checkpoints = out.toAbsolutePath().resolveSibling("." + out.getFileName()
          + ".checkpoints-" + hash);
      try (LanguageModel lm = LanguageModel.load(modelDir, Devices.choose(experiment.device()));
          LoraAdapter adapter = LoraAdapter.create(lora, lm.config(), lm.model().manager(),
              experiment.seed())) {
        List<TrainingExample> data = TaskPrompts.supervised(split.train(),
            experiment.answerPrompt(), lm.tokenizer(), lm.eosIds()[0],
            experiment.raw().getBoolean("train.prompt-loss"));
        LOG.info("{}: {} training examples ({} held out), {}, {} trainable parameters",
            task.name(), data.size(), split.test().size(), adapter, adapter.parameterCount());
        LoraTrainer.Result r = new LoraTrainer(trainer)
            .listening((done, checkpoint) -> FaultInjection.afterTrainStep(done))
            .train(lm, adapter, data, checkpoints);
        ObjectNode summary = new ObjectMapper().createObjectNode();
        summary.put("config_hash", hash);
        summary.put("base_model", modelDir.toString());
        summary.put("task", experiment.taskFile().toString());
        summary.put("train_examples", data.size());
        summary.put("test_examples", split.test().size());
        summary.put("steps", r.steps());
        summary.put("resumed_from_step", r.resumedFromStep());
        summary.put("first_loss", r.losses().isEmpty() ? null : r.losses().get(0));
        summary.put("final_loss", r.losses().isEmpty() ? null
            : r.losses().get(r.losses().size() - 1));
        summary.put("tokens_per_second", r.tokensPerSecond());
        summary.put("seconds", r.seconds());
        PeftFormat.write(adapter, out, Map.of(SUMMARY_FILE, Reports.toJson(summary),
            "lt_settings.conf", settings.render()));
        try {
          PeftFormat.deleteRecursively(checkpoints);
        } catch (IOException e) {
          LOG.warn("could not remove {}: {}", checkpoints, e.getMessage());
        }
        return summary;
      }
    }
  }

  /**
   * Validates the settings, the task file and the output directory. An output holding an
   * adapter of other settings (or anything else) is refused unless {@code force}.
   */
  public static Plan plan(Path modelDir, Path out, Settings settings, boolean force) {
    Experiment exp = new Experiment(settings);
    TrainerConfig tc = exp.trainer();
    LoraConfig lc = exp.lora(modelDir.toString());
    Task task = TaskFiles.load(exp.taskFile());
    Split split = Split.of(task, exp.testFraction(), exp.splitSeed());
    exp.answerPrompt();
    if (!Files.isDirectory(modelDir)) {
      throw new IllegalArgumentException("model directory " + modelDir + " does not exist");
    }
    // lt.migrate, lt.adalora and lt.titok.max-failed-fraction do not change a LoRA expert:
    // adapters trained before they existed stay up to date (train-lora --adalora does not use
    // this shortcut)
    String hash = Settings.hash(settings.config().withoutPath("eval").withoutPath("device")
        .withoutPath("migrate").withoutPath("adalora").withoutPath("titok.max-failed-fraction")
        .withFallback(ConfigFactory.parseMap(Map.of("model",
            modelDir.toAbsolutePath().normalize().toString()))));
    boolean upToDate = false;
    if (Files.isRegularFile(out.resolve(SUMMARY_FILE)) && !force) {
      if (!hash.equals(readHash(out.resolve(SUMMARY_FILE)))) {
        throw new IllegalArgumentException(out + " holds an adapter trained with other "
            + "settings; choose another output or pass --force");
      }
      upToDate = true;
    } else if (Files.exists(out) && !force) {
      throw new IllegalArgumentException(out + " exists and is not an adapter written by "
          + "train-lora; choose another output or pass --force");
    }
    return new Plan(modelDir, out, settings, exp, tc, lc, task, split, hash, upToDate);
  }

  static String readHash(Path summary) {
    try {
      return new ObjectMapper().readTree(summary.toFile()).path("config_hash").asText();
    } catch (IOException e) {
      return "";
    }
  }
}
