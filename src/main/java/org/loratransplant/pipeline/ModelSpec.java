package org.loratransplant.pipeline;

import java.io.Serializable;
import org.loratransplant.model.Precision;

/**
 * What an executor needs to load a model: plain paths, so it serialises into every task for free.
 * The model itself is loaded lazily, once per executor JVM, by {@link ExecutorModels}.
 *
 * @param adapterDir PEFT adapter to load beside the base, or null
 * @param precision the number format of its inference products ({@link Precision})
 */
public record ModelSpec(String modelDir, String adapterDir, String device, Precision precision)
    implements Serializable {

  /** A float32 spec. */
  public ModelSpec(String modelDir, String adapterDir, String device) {
    this(modelDir, adapterDir, device, Precision.FP32);
  }
}
