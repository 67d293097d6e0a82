package org.loratransplant.pipeline;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.spark.TaskContext;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.model.Devices;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.model.Precision;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One model per executor JVM and spec: loaded on first use by any task, then shared by every
 * later task and partition of that executor (the DJL Spark extension reloads per partition).
 * Concurrent tasks of one executor share it without a lock: inference only reads the weights and
 * each forward allocates in its own sub-manager. Each task batches its whole partition. The load
 * counter is logged with the JVM's pid so a run shows one load per JVM. Model and adapter
 * directories are resolved by {@link ModelDirs}: a remote one is copied to the local cache first.
 */
public final class ExecutorModels {
  private static final Logger LOG = LoggerFactory.getLogger(ExecutorModels.class);
  private static final Map<ModelSpec, Loaded> MODELS = new ConcurrentHashMap<>();
  private static final AtomicInteger LOADS = new AtomicInteger();
  /** How each load's log line starts. */
  public static final String LOAD_LOG = "executor model load";

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
    LanguageModel lm = LanguageModel.load(ModelDirs.local(spec.modelDir()),
        Devices.choose(device), spec.precision());
    LoraAdapter adapter = spec.adapterDir() == null ? null
        : PeftFormat.read(ModelDirs.local(spec.adapterDir()), lm.config(), lm.model().manager());
    int n = LOADS.incrementAndGet();
    // The cluster test counts these lines per executor JVM (by pid) in the workers' logs.
    LOG.info(String.format("%s #%d in this JVM (pid %d): %s%s in %.2f s, products in %s%s",
        LOAD_LOG, n, ProcessHandle.current().pid(), spec.modelDir(),
        adapter == null ? "" : " + " + spec.adapterDir(), (System.nanoTime() - t0) / 1e9,
        lm.precision().label(), spec.precision() == Precision.AUTO ? " (auto)" : ""));
    return new Loaded(lm, adapter);
  }
}
