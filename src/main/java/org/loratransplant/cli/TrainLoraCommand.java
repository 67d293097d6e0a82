package org.loratransplant.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
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
import org.loratransplant.task.Split;
import org.loratransplant.task.Task;
import org.loratransplant.task.TaskFiles;
import org.loratransplant.task.TaskPrompts;
import org.loratransplant.train.LoraTrainer;
import org.loratransplant.train.TrainerConfig;
import org.loratransplant.train.TrainingExample;

/** {@code jobs/lt train-lora}: fits a LoRA on a task's training split (makes a source expert). */
public final class TrainLoraCommand implements Command {
  static final String SUMMARY_FILE = "lt_train.json";

  @Override
  public String name() {
    return "train-lora";
  }

  @Override
  public String summary() {
    return "Fit a LoRA on a task's training split (BBH .json, MMLU .csv or .jsonl) with the "
        + "prompt template and trainer settings from conf/; writes a PEFT adapter. This is how "
        + "users make the source expert. Resumes from its checkpoints after a crash.";
  }

  @Override
  public int run(String[] args) {
    Options o = new Options(name(), summary())
        .value("model", "DIR", "base model directory", null)
        .value("out", "DIR", "where the adapter is written (PEFT layout)", null)
        .value("task", "FILE", "task file (overrides lt.task.file)", null)
        .value("device", "D", "auto, cpu, gpu or gpu:N (overrides lt.device)", null)
        .flag("force", "retrain even if --out holds an adapter from the same settings");
    ConfCli.declare(o);
    if (!o.parse(args)) {
      return 0;
    }
    Path modelDir = o.path("model");
    Path out = o.path("out");
    Settings settings = ConfCli.settings(o, "lt.task.file", o.get("task"), "lt.device",
        o.get("device"));
    Experiment exp = ConfCli.experiment(settings);
    // Validate everything cheap before loading a model.
    TrainerConfig tc = exp.trainer();
    LoraConfig lc = exp.lora(modelDir.toString());
    Task task = TaskFiles.load(exp.taskFile());
    Split split = Split.of(task, exp.testFraction(), exp.splitSeed());
    exp.answerPrompt();
    if (!Files.isDirectory(modelDir)) {
      throw new UsageException("--model " + modelDir + ": no such directory");
    }
    String hash = Settings.hash(settings.config().withoutPath("eval").withoutPath("device")
        .withFallback(com.typesafe.config.ConfigFactory.parseMap(Map.of("model",
            modelDir.toAbsolutePath().normalize().toString()))));
    if (Files.isRegularFile(out.resolve(SUMMARY_FILE)) && !o.has("force")) {
      String previous = readHash(out.resolve(SUMMARY_FILE));
      if (hash.equals(previous)) {
        System.err.println("lt train-lora: " + out + " already holds an adapter trained with "
            + "these settings (use --force to retrain)");
        return 0;
      }
      throw new UsageException(out + " holds an adapter trained with other settings; choose "
          + "another --out or pass --force");
    }
    if (Files.exists(out) && !o.has("force") && !Files.isRegularFile(out.resolve(SUMMARY_FILE))) {
      throw new UsageException(out + " exists and is not an adapter written by train-lora; "
          + "choose another --out or pass --force");
    }
    System.err.println("lt train-lora: settings from " + settings.source() + "\n"
        + settings.render());
    Path checkpoints = out.toAbsolutePath().resolveSibling("." + out.getFileName()
        + ".checkpoints-" + hash);
    try (LanguageModel lm = LanguageModel.load(modelDir, Devices.choose(exp.device()));
        LoraAdapter adapter = LoraAdapter.create(lc, lm.config(), lm.model().manager(),
            exp.seed())) {
      List<TrainingExample> data = TaskPrompts.supervised(split.train(), exp.answerPrompt(),
          lm.tokenizer(), lm.eosIds()[0], exp.raw().getBoolean("train.prompt-loss"));
      System.err.printf("lt train-lora: %s: %d training examples (%d held out), %s, %d "
          + "trainable parameters%n", task.name(), data.size(), split.test().size(), adapter,
          adapter.parameterCount());
      long heapBefore = usedHeap();
      LoraTrainer.Result r = new LoraTrainer(tc).train(lm, adapter, data, checkpoints);
      ObjectNode summary = new ObjectMapper().createObjectNode();
      summary.put("config_hash", hash);
      summary.put("base_model", modelDir.toString());
      summary.put("task", exp.taskFile().toString());
      summary.put("train_examples", data.size());
      summary.put("test_examples", split.test().size());
      summary.put("steps", r.steps());
      summary.put("resumed_from_step", r.resumedFromStep());
      summary.put("first_loss", r.losses().isEmpty() ? null : r.losses().get(0));
      summary.put("final_loss", r.losses().isEmpty() ? null
          : r.losses().get(r.losses().size() - 1));
      summary.put("tokens_per_second", r.tokensPerSecond());
      summary.put("seconds", r.seconds());
      summary.put("heap_used_mb", (usedHeap() - heapBefore) / 1e6);
      PeftFormat.write(adapter, out, Map.of(SUMMARY_FILE, Reports.toJson(summary),
          "lt_settings.conf", settings.render()));
      try {
        PeftFormat.deleteRecursively(checkpoints);
      } catch (java.io.IOException e) {
        System.err.println("lt train-lora: could not remove " + checkpoints + ": "
            + e.getMessage());
      }
      System.err.printf("lt train-lora: wrote %s (%d steps, loss %.4f -> %.4f, %.0f tok/s, "
          + "%.1f s)%n", out, r.steps(), summary.get("first_loss").asDouble(),
          summary.get("final_loss").asDouble(), r.tokensPerSecond(), r.seconds());
    }
    return 0;
  }

  private static long usedHeap() {
    Runtime rt = Runtime.getRuntime();
    return rt.totalMemory() - rt.freeMemory();
  }

  static String readHash(Path summary) {
    try {
      return new ObjectMapper().readTree(summary.toFile()).path("config_hash").asText();
    } catch (java.io.IOException e) {
      return "";
    }
  }
}
