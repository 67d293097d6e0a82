package org.loratransplant.transfer;

import ai.djl.Device;
import ai.djl.ndarray.NDManager;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.LoraConfig;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.model.ModelConfig;
import org.loratransplant.model.Projection;
import org.loratransplant.safetensors.Checkpoint;
import org.loratransplant.safetensors.DType;
import org.loratransplant.safetensors.SafeTensorsWriter;
import org.loratransplant.safetensors.TensorData;

/**
 * Times the transfers over a random checkpoint of a given (by default Llama-2-7B) shape: it
 * writes, in a fresh directory under {@code workdir}, a Llama {@code config.json}, the seven projections of
 * every layer as bf16 (one shard per layer, as 7B checkpoints ship in 16-bit; embeddings and
 * norms are left out, the transfer never reads them) and a random LoRA on all seven; then
 * transfers the LoRA from that checkpoint to itself with each method asked for (LoRA-X and
 * Cross-LoRA take two truncated SVDs per module, as between two different checkpoints: nothing
 * is cached; with the source as target every similarity is 1, so every module is transferred,
 * the most work) and deletes the directory.
 *
 * <p>Memory: one layer's shard is built at a time (~0.4 GB at 7B) and the transfer holds one
 * module's weights, so a full 7B shape fits the 24 GB machine; the disk needs ~13 GB.
 */
public final class TransferBenchmark {
  private TransferBenchmark() {}

  /** A decoder shape; heads of 128 dims. */
  public record Shape(int layers, int hidden, int ffn, int loraRank) {
    ModelConfig config() {
      int heads = Math.max(1, hidden / 128);
      return new ModelConfig("llama", hidden, ffn, layers, heads, heads, hidden / heads, 32000,
          4096, 1e-5, 10000, null, false, false, false, false, 0, 1, List.of(2));
    }
  }

  /** The measured figures of one method. */
  public record Figures(Shape shape, Method method, int modules, long transferred,
      double generateSeconds, double transferSeconds, double cpuSeconds, long checkpointBytes) {
    public double secondsPerModule() {
      return transferSeconds / modules;
    }

    @Override
    public String toString() {
      return String.format(Locale.ROOT, "%s benchmark: %d layers, hidden %d, ffn %d, LoRA "
          + "rank %d: %d modules (%d transferred), checkpoint %.1f GB bf16 (written in %.1f s); "
          + "transfer %.1f s total, %.2f s per module (process CPU %.1f s, %.2f s per module)",
          method.cliName(), shape.layers(), shape.hidden(), shape.ffn(), shape.loraRank(),
          modules, transferred, checkpointBytes / 1e9, generateSeconds, transferSeconds,
          secondsPerModule(), cpuSeconds, cpuSeconds / modules);
    }
  }

  /**
   * Generates the checkpoint once, then transfers, times and reports each of {@code methods}
   * in turn ({@code settings}' method is replaced by each), and cleans up; progress lines and
   * each method's figures as soon as measured go to {@code log}.
   */
  public static List<Figures> run(Path workdir, Shape shape, TransferSettings settings,
      List<Method> methods, PrintStream log) {
    Path dir;
    try {
      Files.createDirectories(workdir);
      dir = Files.createTempDirectory(workdir, "lt-transfer-bench-");
    } catch (IOException e) {
      throw new UncheckedIOException("cannot create a directory under " + workdir, e);
    }
    try {
      Path model = dir.resolve("model");
      Path adapter = dir.resolve("adapter");
      long t0 = System.nanoTime();
      long bytes = writeCheckpoint(model, shape, log);
      writeAdapter(adapter, shape);
      double gen = (System.nanoTime() - t0) / 1e9;
      log.printf(Locale.ROOT, "generated %.1f GB in %.1f s%n", bytes / 1e9, gen);
      List<Figures> out = new ArrayList<>();
      for (Method method : methods) {
        log.printf(Locale.ROOT, "transferring with %s...%n", method.cliName());
        TransferSettings st = new TransferSettings(method, settings.rank(), settings.threshold(),
            settings.seed());
        long t1 = System.nanoTime();
        long cpu1 = processCpuNanos();
        int perLayer = Projection.values().length;
        int[] done = {0};
        Transfer.Result r = Transfer.run(st, model, adapter, model, row -> {
          if (++done[0] % perLayer == 0) {
            double s = (System.nanoTime() - t1) / 1e9;
            log.printf(Locale.ROOT, "  %s: %d modules in %.1f s (%.2f s per module)%n",
                method.cliName(), done[0], s, s / done[0]);
          }
        });
        double secs = (System.nanoTime() - t1) / 1e9;
        double cpu = (processCpuNanos() - cpu1) / 1e9;
        Figures f = new Figures(shape, method, r.modules().size(), r.transferred(), gen, secs,
            cpu, bytes);
        log.println(f);
        out.add(f);
      }
      return out;
    } finally {
      try {
        PeftFormat.deleteRecursively(dir);
      } catch (IOException e) {
        log.println("could not delete " + dir + ": " + e.getMessage());
      }
    }
  }

  /**
   * CPU time of the whole process (all threads, libtorch's included), the figure that does not
   * depend on how busy a shared machine is; -1 where the JVM cannot tell.
   */
  private static long processCpuNanos() {
    var os = java.lang.management.ManagementFactory.getOperatingSystemMXBean();
    return os instanceof com.sun.management.OperatingSystemMXBean b ? b.getProcessCpuTime() : -1;
  }

  private static long writeCheckpoint(Path model, Shape shape, PrintStream log) {
    ModelConfig c = shape.config();
    try {
      Files.createDirectories(model);
      ObjectMapper json = new ObjectMapper();
      ObjectNode cfg = json.createObjectNode();
      cfg.putArray("architectures").add("LlamaForCausalLM");
      cfg.put("model_type", "llama");
      cfg.put("hidden_size", c.hiddenSize());
      cfg.put("intermediate_size", c.intermediateSize());
      cfg.put("num_hidden_layers", c.numLayers());
      cfg.put("num_attention_heads", c.numHeads());
      cfg.put("num_key_value_heads", c.numKvHeads());
      cfg.put("head_dim", c.headDim());
      cfg.put("vocab_size", c.vocabSize());
      cfg.put("max_position_embeddings", c.maxPositions());
      cfg.put("rms_norm_eps", 1e-5);
      cfg.put("hidden_act", "silu");
      cfg.put("bos_token_id", 1);
      cfg.put("eos_token_id", 2);
      Files.writeString(model.resolve("config.json"), json.writeValueAsString(cfg));
      ObjectNode index = json.createObjectNode();
      ObjectNode weightMap = index.putObject("weight_map");
      long bytes = 0;
      long state = 0x9E3779B97F4A7C15L;
      for (int l = 0; l < c.numLayers(); l++) {
        String shard = String.format(Locale.ROOT, "model-%05d-of-%05d.safetensors", l + 1,
            c.numLayers());
        Map<String, TensorData> tensors = new LinkedHashMap<>();
        for (Projection p : Projection.values()) {
          int out = p.outFeatures(c);
          int in = p.inFeatures(c);
          byte[] data = new byte[2 * out * in];
          float bound = (float) (1 / Math.sqrt(in));
          for (int i = 0; i < out * in; i++) {
            state ^= state << 13; // xorshift64: a fast fill, statistics do not matter here
            state ^= state >>> 7;
            state ^= state << 17;
            float v = ((state >>> 40) / (float) (1 << 24) * 2 - 1) * bound;
            int bits = Float.floatToRawIntBits(v) >>> 16; // bf16: the float's top half
            data[2 * i] = (byte) bits;
            data[2 * i + 1] = (byte) (bits >>> 8);
          }
          String name = p.keyPrefix(l) + ".weight";
          tensors.put(name, TensorData.of(DType.BF16, new long[] {out, in}, data));
          weightMap.put(name, shard);
          bytes += data.length;
        }
        SafeTensorsWriter.write(model.resolve(shard), tensors, Map.of("format", "pt"));
        if ((l + 1) % 8 == 0 || l + 1 == c.numLayers()) {
          log.printf(Locale.ROOT, "  wrote %d of %d layers%n", l + 1, c.numLayers());
        }
      }
      Files.writeString(model.resolve(Checkpoint.INDEX_FILE), json.writeValueAsString(index),
          StandardCharsets.UTF_8);
      return bytes;
    } catch (IOException e) {
      throw new UncheckedIOException("writing the benchmark checkpoint under " + model, e);
    }
  }

  private static void writeAdapter(Path dir, Shape shape) {
    ModelConfig c = shape.config();
    int r = shape.loraRank();
    LoraConfig config = new LoraConfig(r, 2 * r, 0, EnumSet.allOf(Projection.class), List.of(),
        false, "random");
    SplittableRandom rng = new SplittableRandom(1);
    Map<LoraAdapter.Key, LoraAdapter.Matrices> values = new LinkedHashMap<>();
    for (int l = 0; l < c.numLayers(); l++) {
      for (Projection p : Projection.values()) {
        float[] a = new float[r * p.inFeatures(c)];
        float[] b = new float[p.outFeatures(c) * r];
        for (int i = 0; i < a.length; i++) {
          a[i] = (float) (rng.nextDouble() - 0.5);
        }
        for (int i = 0; i < b.length; i++) {
          b[i] = (float) ((rng.nextDouble() - 0.5) * 0.01);
        }
        values.put(new LoraAdapter.Key(l, p), new LoraAdapter.Matrices(a, b));
      }
    }
    try (NDManager m = NDManager.newBaseManager(Device.cpu());
        LoraAdapter adapter = LoraAdapter.of(config, c, m, values)) {
      PeftFormat.write(adapter, dir);
    }
  }
}
