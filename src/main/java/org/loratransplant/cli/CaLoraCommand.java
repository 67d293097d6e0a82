package org.loratransplant.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.util.List;
import org.loratransplant.calora.CaLoraJob;
import org.loratransplant.calora.CompressionLevel;
import org.loratransplant.config.Experiment;
import org.loratransplant.config.Settings;
import org.loratransplant.lora.PeftFormat;

/** {@code jobs/lt ca-lora}: CA-LoRA onto compressed copies of the base. */
public final class CaLoraCommand implements Command {
  @Override
  public String name() {
    return "ca-lora";
  }

  @Override
  public String summary() {
    return "CA-LoRA: move a LoRA onto compressed copies of its base (--compress nf4, int8, "
        + "prune[:sparsity], comma-separated) by inheriting it, adding recovery modules "
        + "sigma(x D) U beside each adapted projection and training both on the task CE (+ "
        + "alpha x hidden-state MSE against the uncompressed base + LoRA; lt.calora). Reports "
        + "per level: compressed vanilla, inherited as-is, inherit + recovery, inherit + "
        + "recovery + distillation and the uncompressed expert (exact match, KL to the expert).";
  }

  @Override
  public int run(String[] args) {
    Options o = new Options(name(), summary())
        .value("model", "DIR", "the uncompressed base model the adapter was trained on", null)
        .value("adapter", "DIR", "the source PEFT LoRA", null)
        .value("compress", "LEVELS", "nf4, int8, prune[:sparsity] (default 0.5), or several "
            + "comma-separated", null)
        .value("out", "DIR", "compressed bases, trained adapters (PEFT LoRA + "
            + "recovery.safetensors) and calora.{json,md}", null)
        .value("task", "FILE", "task file (overrides lt.task.file)", null)
        .value("seeds", "S", "comma-separated seeds of the trained rows (overrides "
            + "lt.calora.seeds)", null)
        .value("device", "D", "auto, cpu, gpu or gpu:N (overrides lt.device)", null);
    ConfCli.declare(o);
    if (!o.parse(args)) {
      return 0;
    }
    List<CompressionLevel> levels;
    try {
      levels = CompressionLevel.parseList(o.required("compress"));
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage());
    }
    if (!Files.isDirectory(o.path("model"))) {
      throw new UsageException("--model " + o.get("model") + ": no such directory");
    }
    if (!PeftFormat.isAdapterDir(o.path("adapter"))) {
      throw new UsageException("--adapter " + o.get("adapter") + ": no "
          + PeftFormat.CONFIG_FILE + " there");
    }
    o.required("out");
    String seeds = o.get("seeds") == null ? null : "[" + o.get("seeds") + "]";
    Settings settings = ConfCli.settings(o, "lt.task.file", o.get("task"), "lt.device",
        o.get("device"), "lt.calora.seeds", seeds);
    ObjectNode r;
    try {
      Experiment exp = new Experiment(settings);
      CaLoraJob.settings(exp); // refuse bad lt.calora values before loading anything
      CaLoraJob.seeds(exp);
      r = CaLoraJob.run(o.path("model"), o.path("adapter"), levels, o.path("out"), settings);
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage());
    }
    System.err.println("lt ca-lora: wrote " + o.path("out").resolve("calora.md") + " ("
        + r.get("levels").size() + " levels)");
    return 0;
  }
}
