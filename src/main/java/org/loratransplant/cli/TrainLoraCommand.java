package org.loratransplant.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import org.loratransplant.config.Settings;
import org.loratransplant.pipeline.expert.ExpertTraining;

/** {@code jobs/lt train-lora}: fits a LoRA on a task's training split (makes a source expert). */
public final class TrainLoraCommand implements Command {
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
        .flag("force", "retrain even if --out holds an adapter from the same settings")
        .flag("adalora", "train an AdaLoRA (init_r = lt.lora.r, budget from lt.adalora) and "
            + "write PEFT's ADALORA layout");
    ConfCli.declare(o);
    if (!o.parse(args)) {
      return 0;
    }
    Settings settings = ConfCli.settings(o, "lt.task.file", o.get("task"), "lt.device",
        o.get("device"));
    ExpertTraining.Plan plan;
    try {
      plan = ExpertTraining.plan(o.path("model"), o.path("out"), settings, o.has("force"));
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage());
    }
    if (plan.upToDate() && o.has("adalora")
        != org.loratransplant.lora.adalora.AdaLoraFormat.isAdaLora(plan.out())) {
      throw new UsageException(plan.out() + " holds " + (o.has("adalora") ? "a LoRA" : "an "
          + "AdaLoRA") + " trained with these settings; choose another --out or pass --force");
    }
    if (plan.upToDate() && !o.has("adalora")) { // lt.adalora is not in the plan's hash
      System.err.println("lt train-lora: " + plan.out() + " already holds an adapter trained "
          + "with these settings (use --force to retrain)");
      return 0;
    }
    System.err.println("lt train-lora: settings from " + settings.source() + "\n"
        + settings.render());
    ObjectNode s = o.has("adalora")
        ? org.loratransplant.pipeline.expert.AdaLoraExpert.execute(plan) : plan.execute();
    System.err.printf("lt train-lora: wrote %s (%d steps, loss %.4f -> %.4f, %.0f tok/s, "
        + "%.1f s)%n", plan.out(), s.get("steps").asInt(), s.get("first_loss").asDouble(),
        s.get("final_loss").asDouble(), s.get("tokens_per_second").asDouble(),
        s.get("seconds").asDouble());
    return 0;
  }
}
