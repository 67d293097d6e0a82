package org.loratransplant.pipeline;

import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.spark.TaskContext;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.model.Devices;
import org.loratransplant.model.LanguageModel;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One model per executor JVM and spec: loaded on first use by any task, then shared by every
 * later task and partition of that executor (the DJL Spark extension reloads per partition).
 * Concurrent tasks of one executor share it without a lock: inference only reads the weights and
 * each forward allocates in its own sub-manager. Each task batches its whole partition. The load
 * counter is logged so a run shows one load per JVM.
 */
public final class ExecutorModels {
  private static final Logger LOG = LoggerFactory.getLogger(ExecutorModels.class);
  private static final Map<ModelSpec, Loaded> MODELS = new ConcurrentHashMap<>();
  private static final AtomicInteger LOADS = new AtomicInteger();

  private ExecutorModels() {}

  /** A loaded base model and its adapter (null when the spec has none). */
  public record Loaded(LanguageModel model, LoraAdapter adapter) {}

  public static Loaded get(ModelSpec spec) {
    return MODELS.computeIfAbsent(spec, ExecutorModels::load);
  }

  /** Models loaded in this JVM so far. */
  public static int loads() {
    return LOADS.get();
  }

  private static Loaded load(ModelSpec spec) {
    long t0 = System.nanoTime();
    String device = spec.device();
    TaskContext tc = TaskContext.get();
    if ("auto".equals(device) && tc != null && tc.resources().contains("gpu")) {
      // Spark gave this task a GPU: use the address it assigned.
      device = "gpu:" + tc.resources().apply("gpu").addresses()[0];
    }
    LanguageModel lm = LanguageModel.load(Path.of(spec.modelDir()), Devices.choose(device));
    LoraAdapter adapter = spec.adapterDir() == null ? null
        : PeftFormat.read(Path.of(spec.adapterDir()), lm.config(), lm.model().manager());
    int n = LOADS.incrementAndGet();
    LOG.info(String.format("executor model load #%d in this JVM: %s%s in %.2f s", n,
        spec.modelDir(), adapter == null ? "" : " + " + spec.adapterDir(),
        (System.nanoTime() - t0) / 1e9));
    return new Loaded(lm, adapter);
  }
}
