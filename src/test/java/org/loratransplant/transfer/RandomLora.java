package org.loratransplant.transfer;

import ai.djl.Device;
import ai.djl.ndarray.NDManager;
import java.nio.file.Path;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.LoraConfig;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.model.ModelConfig;
import org.loratransplant.model.Projection;

/** A seeded random LoRA on all seven projections (B non-zero, unlike a fresh one). */
public final class RandomLora {
  private RandomLora() {}

  public static void write(Path dir, Path model, int r, double alpha, long seed) {
    ModelConfig c = ModelConfig.load(model);
    SplittableRandom rng = new SplittableRandom(seed);
    Map<LoraAdapter.Key, LoraAdapter.Matrices> values = new LinkedHashMap<>();
    for (int l = 0; l < c.numLayers(); l++) {
      for (Projection p : Projection.values()) {
        float[] a = new float[r * p.inFeatures(c)];
        float[] b = new float[p.outFeatures(c) * r];
        for (int i = 0; i < a.length; i++) {
          a[i] = (float) ((rng.nextDouble() * 2 - 1) / Math.sqrt(p.inFeatures(c)));
        }
        for (int i = 0; i < b.length; i++) {
          b[i] = (float) ((rng.nextDouble() * 2 - 1) * 0.2);
        }
        values.put(new LoraAdapter.Key(l, p), new LoraAdapter.Matrices(a, b));
      }
    }
    LoraConfig config = new LoraConfig(r, alpha, 0, EnumSet.allOf(Projection.class), List.of(),
        false, model.getFileName().toString());
    try (NDManager m = NDManager.newBaseManager(Device.cpu());
        LoraAdapter a = LoraAdapter.of(config, c, m, values)) {
      PeftFormat.write(a, dir);
    }
  }
}
