package org.loratransplant.cli;

import java.nio.file.Files;
import java.nio.file.Path;
import org.loratransplant.model.Adapter;
import org.loratransplant.model.Devices;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.model.Precision;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.PeftFormat;

/** The model options every model command shares, and loading from them. */
final class ModelCli {
  private ModelCli() {}

  static void declare(Options o) {
    o.value("device", "D", "auto, cpu, gpu or gpu:N", "auto")
        .value("adapter", "DIR", "PEFT LoRA adapter directory to apply", null)
        .flag("merged", "merge the adapter into the base weights instead of running it beside")
        .value("precision", "P", "fp32; bf16: the LM head and the layers' products stored "
            + "and run in bf16 with float32 accumulation (the rest float32; see README, bf16); "
            + "f16: the same in float16, a float16 checkpoint's values kept (README, float16); "
            + "or auto: bf16 where the device computes it natively (AMX-BF16 or AVX512-BF16, "
            + "a GPU of compute capability 8+) and the hidden size is at least 512 (f16 for a "
            + "float16 checkpoint on a GPU of 7.0+), else fp32",
            "fp32");
  }

  /** A loaded model and the adapter to run it with (null for the base model). */
  record Loaded(LanguageModel model, Adapter adapter) implements AutoCloseable {
    @Override
    public void close() {
      model.close();
    }
  }

  static Loaded load(Options o) {
    Path dir = o.path("model");
    if (!Files.isDirectory(dir)) {
      throw new UsageException("--model " + dir + ": no such directory");
    }
    if (o.has("merged") && !o.has("adapter")) {
      throw new UsageException("--merged needs --adapter");
    }
    if (o.has("adapter") && !PeftFormat.isAdapterDir(o.path("adapter"))) {
      throw new UsageException("--adapter " + o.get("adapter") + ": no "
          + PeftFormat.CONFIG_FILE + " there");
    }
    Precision precision;
    try {
      precision = Precision.parse(o.get("precision"), "--precision");
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage());
    }
    LanguageModel lm = LanguageModel.load(dir, Devices.choose(o.get("device")), precision);
    if (!o.has("adapter")) {
      return new Loaded(lm, null);
    }
    try {
      if (org.loratransplant.lora.adalora.AdaLoraFormat.isAdaLora(o.path("adapter"))) {
        if (o.has("merged")) {
          throw new UsageException("--merged is not supported for AdaLoRA adapters");
        }
        return new Loaded(lm, org.loratransplant.lora.adalora.AdaLoraFormat.read(
            o.path("adapter"), lm.config(), lm.model().manager()));
      }
      if (org.loratransplant.calora.CaLoraAdapter.isCaLora(o.path("adapter"))) {
        if (o.has("merged")) {
          throw new UsageException("--merged is not possible for a CA-LoRA adapter: its "
              + "recovery modules are non-linear");
        }
        return new Loaded(lm, org.loratransplant.calora.CaLoraAdapter.read(o.path("adapter"),
            lm.config(), lm.model().manager()));
      }
      LoraAdapter a = PeftFormat.read(o.path("adapter"), lm.config(), lm.model().manager());
      if (o.has("merged")) {
        a.merge(lm.model());
        return new Loaded(lm, null);
      }
      return new Loaded(lm, a);
    } catch (RuntimeException e) {
      lm.close();
      throw e;
    }
  }
}
