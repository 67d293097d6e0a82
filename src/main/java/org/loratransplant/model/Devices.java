package org.loratransplant.model;

import ai.djl.Device;
import ai.djl.engine.Engine;

/** Where models run: the CPU unless a GPU is visible and allowed. */
public final class Devices {
  private Devices() {}

  /**
   * {@code auto}: the first GPU DJL sees, else the CPU; {@code cpu}; {@code gpu} or
   * {@code gpu:N}: that GPU, an error if none is visible.
   */
  public static Device choose(String spec) {
    String s = spec == null ? "auto" : spec.trim();
    int gpus = Engine.getInstance().getGpuCount();
    if (s.equals("auto")) {
      return gpus > 0 ? Device.gpu(0) : Device.cpu();
    }
    if (s.equals("cpu")) {
      return Device.cpu();
    }
    if (s.equals("gpu") || s.startsWith("gpu:")) {
      int id = s.equals("gpu") ? 0 : Integer.parseInt(s.substring(4));
      if (id >= gpus) {
        throw new IllegalArgumentException("device " + s + " requested but DJL sees " + gpus
            + " GPU(s); build with -Pgpu and run where CUDA is available, or use --device cpu");
      }
      return Device.gpu(id);
    }
    throw new IllegalArgumentException("unknown device '" + spec + "' (auto, cpu, gpu, gpu:N)");
  }
}
