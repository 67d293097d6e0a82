package org.loratransplant.model;

import ai.djl.Device;
import ai.djl.engine.EngineException;
import ai.djl.pytorch.engine.PtSymbolBlock;
import ai.djl.pytorch.jni.IValue;
import ai.djl.pytorch.jni.IValueUtils;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The inference forward of a Llama-family architecture as a TorchScript module
 * ({@code LlamaDecoder.py} beside this class), compiled by libtorch from source at first use.
 * A decode step of the models here is ~150 tensor ops of a few microseconds each; through DJL
 * every op is a JNI call, a Java object and a manager entry (~4 us here), inside TorchScript it
 * is an interpreter instruction (~1 us). The module holds no weights: callers pass a
 * {@link FusedDecoder}'s weight list, so one compiled module serves every copy of the weights
 * of an architecture (the base, the base with an adapter folded in) and every thread.
 *
 * <p>Methods (see the source for shapes): {@code score} returns teacher-forced log-probs,
 * {@code prefill} runs a prompt and returns the last position's logits (or probabilities) with
 * a fresh key/value cache, {@code step} extends that cache in place by the new positions;
 * continuous batching ({@link ContinuousBatch}) uses {@code new_cache}, {@code prefill_rows}
 * (prompts into some rows of a cache), {@code step_rows} (a token per row at the row's own slot)
 * and {@code keep_rows}.
 */
final class LlamaScript {
  /**
   * Queries per block of a multi-position attention ({@code LlamaDecoder.attend}): 128-token
   * scoring then computes 10/16 of the full score matrix; 16 to 128 measured alike here.
   */
  private static final int ATTENTION_BLOCK = 32;
  /**
   * Rows from which projections run on oneDNN's linear instead of MKL (see {@code proj} in the
   * source): measured alike at 64 rows, oneDNN ahead above, MKL ahead below.
   */
  private static final long ONEDNN_ROWS = 64;
  /** Values of the (rows, V) logits block scoring computes at a time (64 MB of floats). */
  private static final long HEAD_BLOCK_VALUES = 16L << 20;
  private static final String SOURCE = TorchScriptArchive.source(LlamaScript.class,
      "LlamaDecoder.py");
  /** The source without oneDNN ops, for GPUs and libtorch builds without oneDNN. */
  private static final String PORTABLE_SOURCE = SOURCE.replaceAll(
      "(?s)\\n *# onednn-begin\\n.*?# onednn-end", "");
  private static final Logger LOG = LoggerFactory.getLogger(LlamaScript.class);
  private static final Map<Key, LlamaScript> LOADED = new ConcurrentHashMap<>();

  private final PtSymbolBlock module;

  private record Key(Map<String, Object> attributes, Device device) {}

  private LlamaScript(PtSymbolBlock module) {
    this.module = module;
  }

  /** The compiled module for {@code config}'s architecture on {@code device} (loaded once). */
  static LlamaScript of(ModelConfig config, Device device) {
    return LOADED.computeIfAbsent(new Key(attributes(config), device), LlamaScript::load);
  }

  /** A fresh module that never uses oneDNN (what GPUs run), for tests. */
  static LlamaScript portable(ModelConfig config, Device device) {
    return load(new Key(attributes(config), device), PORTABLE_SOURCE, Long.MAX_VALUE);
  }

  private static LlamaScript load(Key key) {
    if (!key.device().isGpu()) {
      try {
        return load(key, SOURCE, ONEDNN_ROWS);
      } catch (EngineException e) {
        // A libtorch built without oneDNN cannot resolve its ops: run MKL/OpenBLAS products only.
        LOG.warn("oneDNN linear unavailable in this libtorch ({}); using plain matrix products",
            e.getMessage().lines().findFirst().orElse(""));
      }
    }
    return load(key, PORTABLE_SOURCE, Long.MAX_VALUE);
  }

  private static LlamaScript load(Key key, String source, long dnnRows) {
    Map<String, Object> attributes = new LinkedHashMap<>(key.attributes());
    attributes.put("dnn_rows", dnnRows);
    return new LlamaScript(TorchScriptArchive.load("LlamaDecoder", source, attributes,
        key.device()));
  }


  /** Runs {@code method}; the inputs stay the caller's to close, the result is the caller's. */
  IValue run(String method, IValue... inputs) {
    return IValueUtils.runMethod(module, method, inputs);
  }

  /** The module's plain attributes: what the source needs to know of the architecture. */
  private static Map<String, Object> attributes(ModelConfig c) {
    Map<String, Object> a = new LinkedHashMap<>();
    a.put("training", false);
    a.put("layers", c.numLayers());
    a.put("heads", c.numHeads());
    a.put("kv_heads", c.numKvHeads());
    a.put("head_dim", c.headDim());
    a.put("inter", c.intermediateSize());
    a.put("block", ATTENTION_BLOCK);
    // Rows per LM-head block while scoring: (rows, V) logits of at most ~64 MB.
    a.put("head_rows", Math.max(64L, HEAD_BLOCK_VALUES / c.vocabSize()));
    a.put("qkv_bias", c.qkvBias());
    a.put("o_bias", c.oBias());
    a.put("mlp_bias", c.mlpBias());
    return a;
  }

}
