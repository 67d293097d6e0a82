package org.loratransplant.cli;

import java.nio.file.Files;
import java.nio.file.Path;
import org.loratransplant.model.Adapter;
import org.loratransplant.model.Devices;
import org.loratransplant.model.LanguageModel;

/** The model options every model command shares, and loading from them. */
final class ModelCli {
  private ModelCli() {}

  static void declare(Options o) {
    o.value("device", "D", "auto, cpu, gpu or gpu:N", "auto");
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
    LanguageModel lm = LanguageModel.load(dir, Devices.choose(o.get("device")));
    return new Loaded(lm, null);
  }
}
