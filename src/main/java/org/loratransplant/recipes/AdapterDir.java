package org.loratransplant.recipes;

import java.nio.file.Path;
import org.loratransplant.calora.CaLoraAdapter;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.lora.adalora.AdaLoraFormat;
import org.loratransplant.model.Adapter;
import org.loratransplant.model.LanguageModel;

/**
 * A cell's adapter directory read onto its base, whatever the method wrote there: a PEFT LoRA,
 * an AdaLoRA (PEFT's ADALORA layout) or a CA-LoRA (a LoRA plus recovery modules); or nothing
 * when the directory holds no adapter (a transfer that moved no module).
 */
record AdapterDir(Adapter adapter) implements AutoCloseable {

  static AdapterDir read(Path dir, LanguageModel lm) {
    if (!PeftFormat.isAdapterDir(dir)) {
      return new AdapterDir(null);
    }
    if (AdaLoraFormat.isAdaLora(dir)) {
      return new AdapterDir(AdaLoraFormat.read(dir, lm.config(), lm.model().manager()));
    }
    if (CaLoraAdapter.isCaLora(dir)) {
      return new AdapterDir(CaLoraAdapter.read(dir, lm.config(), lm.model().manager()));
    }
    return new AdapterDir(PeftFormat.read(dir, lm.config(), lm.model().manager()));
  }

  @Override
  public void close() {
    if (adapter instanceof AutoCloseable c) {
      try {
        c.close();
      } catch (Exception e) {
        throw new IllegalStateException("cannot close the adapter: " + e.getMessage(), e);
      }
    }
  }
}
