package org.loratransplant.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import org.loratransplant.config.Settings;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.migrate.MigrationJob;

/** {@code jobs/lt migrate-layer}: walks a one-layer LoRA down the stack by distillation. */
public final class MigrateLayerCommand implements Command {
  @Override
  public String name() {
    return "migrate-layer";
  }

  @Override
  public String summary() {
    return "Layer-wise LoRA migration: distil a LoRA on layer L into one on L-1 (MSE of layer "
        + "L's output, optional logit KL and task CE from lt.migrate), repeated down to --to; "
        + "reports per step the share of the adapter's effect kept (task score, KL to the "
        + "expert), parameters and seconds.";
  }

  @Override
  public int run(String[] args) {
    Options o = new Options(name(), summary())
        .value("model", "DIR", "base model directory", null)
        .value("adapter", "DIR", "PEFT LoRA on one layer (train-lora --set "
            + "lt.lora.layers-to-transform=[L])", null)
        .value("from", "L", "the adapter's layer (default: read from the adapter)", null)
        .value("to", "L", "the layer to end on (from-1 for one step, lower for a chain)", null)
        .value("out", "DIR", "where step adapters and migration.{json,md} are written", null)
        .value("task", "FILE", "task file (overrides lt.task.file)", null)
        .value("device", "D", "auto, cpu, gpu or gpu:N (overrides lt.device)", null);
    ConfCli.declare(o);
    if (!o.parse(args)) {
      return 0;
    }
    if (!PeftFormat.isAdapterDir(o.path("adapter"))) {
      throw new UsageException("--adapter " + o.get("adapter") + ": no "
          + PeftFormat.CONFIG_FILE + " there");
    }
    if (!Files.isDirectory(o.path("model"))) {
      throw new UsageException("--model " + o.get("model") + ": no such directory");
    }
    Settings settings = ConfCli.settings(o, "lt.task.file", o.get("task"), "lt.device",
        o.get("device"));
    ObjectNode r;
    try {
      r = MigrationJob.run(o.path("model"), o.path("adapter"),
          o.has("from") ? o.integer("from") : null, o.integer("to"), o.path("out"), settings);
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage());
    }
    System.err.println("lt migrate-layer: wrote " + o.path("out").resolve("migration.md") + " ("
        + (r.get("rows").size() - 2) + " steps)");
    return 0;
  }
}
