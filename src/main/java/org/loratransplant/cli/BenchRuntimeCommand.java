package org.loratransplant.cli;

import java.util.ArrayList;
import java.util.List;
import org.loratransplant.bench.RuntimeBenchmark;

/** {@code jobs/lt bench-runtime}: tokens/s of scoring, generation and training on a model. */
public final class BenchRuntimeCommand implements Command {
  @Override
  public String name() {
    return "bench-runtime";
  }

  @Override
  public String summary() {
    return "Measure the runtime: teacher-forced scoring tokens/s (128-token sequences), sampled "
        + "generation tokens/s (KV cache), LoRA training tokens/s, and peak RSS. Prints a table, "
        + "or one JSON object per line with --json.";
  }

  @Override
  public int run(String[] args) {
    Options o = new Options(name(), summary())
        .value("model", "DIR", "model directory", null)
        .value("score-batches", "B,..", "scoring batch sizes", "1,8,32")
        .value("generate-batches", "B,..", "generation batch sizes", "1,8,32,128")
        .value("expert-batches", "B,..", "batch sizes of scoring as the score stage runs it: "
            + "expert (base + LoRA) and amateur (base) over the same pairs (empty: skip)", "32")
        .value("train-batches", "B,..", "training batch sizes (empty: skip)", "16")
        .value("train-answer", "N", "loss on the last N tokens of each training sequence "
            + "alone (a prompt before them); 0: every token", "0")
        .value("train-steps", "N", "optimizer steps per training run (tokens/s over steps "
            + "2..N)", "4")
        .value("report-every", "K", "print training tokens/s and resident memory every K "
            + "steps (0: never)", "100")
        .value("seq-len", "T", "scoring/training sequence length", "128")
        .value("new-tokens", "N", "tokens generated per request", "128")
        .value("variable-batches", "B,..", "batch sizes (cache rows) of generation with "
            + "responses of different lengths, static and continuous batching side by side "
            + "(empty: skip)", "")
        .value("variable-tokens", "MIN-MAX", "with --variable-batches: each request's new-token "
            + "limit, drawn uniformly from this range", "8-128")
        .value("variable-requests", "K", "with --variable-batches: requests per figure, as a "
            + "multiple of the batch size (the gain grows with it: each run ends on a tail "
            + "where rows drain with nothing left to take)", "16")
        .value("lanes", "L,..", "threads per batch to measure scoring and generation with "
            + "(each runs a part of the batch on its own thread)", "1,2")
        .value("repeats", "R", "timed repeats per figure (median reported)", "3")
        .flag("json", "one JSON object per line instead of a table")
        .flag("memory", "measure loading and memory instead of throughput: seconds to read the "
            + "weight files and to load the model, RSS after loading, and peak RSS while scoring "
            + "--memory-batch sequences of --seq-len tokens with an expert (a LoRA of rank 8 on "
            + "--lora-modules) and the amateur (the base), as the score stage does")
        .value("memory-batch", "B", "sequences scored per pass with --memory", "8")
        .value("lora-modules", "M,..", "the expert's target modules with --memory (or all)",
            "q_proj,v_proj");
    ModelCli.declare(o);
    if (!o.parse(args)) {
      return 0;
    }
    for (int lanes : o.integers("lanes")) {
      if (lanes < 1) {
        throw new UsageException("--lanes: each count must be at least 1, got " + lanes);
      }
    }
    int[] range = variableTokens(o.get("variable-tokens"));
    if (o.integer("variable-requests") < 1) {
      throw new UsageException("--variable-requests must be at least 1, got "
          + o.integer("variable-requests"));
    }
    // Before the model loads; rechecked below against the context-capped sequence length.
    if (o.integer("train-answer") < 0 || o.integer("train-answer") >= o.integer("seq-len")) {
      throw new UsageException("--train-answer: 0 (every token) or 1.."
          + (o.integer("seq-len") - 1) + " (below --seq-len), got " + o.integer("train-answer"));
    }
    if (o.has("memory")) {
      return memory(o);
    }
    List<RuntimeBenchmark.Figure> figures = new ArrayList<>();
    try (ModelCli.Loaded m = ModelCli.load(o)) {
      RuntimeBenchmark b = new RuntimeBenchmark(m.model(), o.integer("repeats"));
      // --precision bf16 loads the products' weights in bf16: inference and training products
      // then run in bf16 (float32 accumulation, activations and adapter).
      String inference = m.model().precision().label();
      int t = Math.min(o.integer("seq-len"), m.model().config().maxPositions());
      int n = Math.min(o.integer("new-tokens"), m.model().config().maxPositions() - 1);
      // The longest prompt of the variable workload is 17 tokens.
      int room = m.model().config().maxPositions() - 17;
      if (o.integers("variable-batches").length > 0 && range[1] > room) {
        throw new UsageException("--variable-tokens: at most " + room + " on this model (its "
            + "context less the longest prompt), got " + range[1]);
      }
      for (int lanes : o.integers("lanes")) {
        m.model().setLanes(lanes);
        for (int batch : o.integers("score-batches")) {
          figures.add(report(b.scoring(batch, t), lanes, o.has("json"), inference));
        }
        for (int batch : o.integers("generate-batches")) {
          figures.add(report(b.generation(batch, n), lanes, o.has("json"), inference));
        }
        for (int batch : o.integers("variable-batches")) {
          reportVariable(b.variableGeneration(batch, batch * o.integer("variable-requests"),
              range[0], range[1]), lanes, o.has("json"));
        }
      }
      m.model().setLanes(1);
      for (int batch : o.integers("expert-batches")) {
        figures.add(report(b.expertScoring(batch, t), 1, o.has("json"), inference));
      }
      int steps = o.integer("train-steps");
      if (steps < 1) {
        throw new UsageException("--train-steps must be at least 1, got " + steps);
      }
      for (int batch : o.integers("train-batches")) {
        if (o.integer("train-answer") < 0 || o.integer("train-answer") >= t) {
          throw new UsageException("--train-answer: 0 (every token) or 1.." + (t - 1)
              + ", got " + o.integer("train-answer"));
        }
        figures.add(report(b.training(batch, t, steps, o.integer("train-answer"),
            o.integer("report-every"), line -> {
          System.out.println(o.has("json") ? "{\"progress\":\"" + line + "\"}" : line);
          System.out.flush();
        }), 1, o.has("json"), inference));
      }
    }
    double rss = RuntimeBenchmark.peakRssMb();
    if (o.has("json")) {
      System.out.printf("{\"workload\":\"peak_rss\",\"mb\":%.1f,\"threads\":%d}%n", rss,
          org.loratransplant.model.IntraOpThreads.cores());
    } else {
      System.out.printf("peak RSS: %.0f MB (intra-op threads up to %d)%n", rss,
          org.loratransplant.model.IntraOpThreads.cores());
    }
    return 0;
  }

  private static int memory(Options o) {
    java.nio.file.Path dir = o.path("model");
    if (!java.nio.file.Files.isDirectory(dir)) {
      throw new UsageException("--model " + dir + ": no such directory");
    }
    java.util.Set<org.loratransplant.model.Projection> targets =
        java.util.EnumSet.noneOf(org.loratransplant.model.Projection.class);
    for (String m : o.get("lora-modules").split(",")) {
      if (m.trim().equals("all")) {
        targets.addAll(java.util.EnumSet.allOf(org.loratransplant.model.Projection.class));
        continue;
      }
      org.loratransplant.model.Projection p =
          org.loratransplant.model.Projection.fromModuleName(m.trim());
      if (p == null) {
        throw new UsageException("--lora-modules: unknown module '" + m + "'");
      }
      targets.add(p);
    }
    RuntimeBenchmark.Memory r = RuntimeBenchmark.memory(dir,
        org.loratransplant.model.Devices.choose(o.get("device")), o.integer("memory-batch"),
        o.integer("seq-len"), targets, org.loratransplant.model.Precision.parse(
            o.get("precision"), "--precision"));
    double gb = 1e9;
    if (o.has("json")) {
      System.out.printf(java.util.Locale.ROOT, "{\"workload\":\"memory\",\"file_gb\":%.3f,"
          + "\"file_read_first_s\":%.2f,\"file_read_again_s\":%.2f,\"file_read_again_cpu_s\":%.2f,"
          + "\"load_s\":%.2f,\"load_cpu_s\":%.2f,"
          + "\"weights_gb\":%.3f,\"rss_before_load_mb\":%.0f,\"rss_after_load_mb\":%.0f,\"peak_load_mb\":%.0f,"
          + "\"peak_amateur_mb\":%.0f,\"peak_scoring_mb\":%.0f,\"base_decoder_mb\":%.1f,\"expert_decoder_mb\":%.1f,"
          + "\"expert_folded\":%b,\"score_s\":%.2f}%n", r.fileBytes() / gb,
          r.fileReadFirstS(), r.fileReadAgainS(), r.fileReadAgainCpuS(), r.loadS(),
          r.loadCpuS(), r.weightBytes() / gb, r.rssBeforeLoadMb(), r.rssAfterLoadMb(), r.peakLoadMb(), r.peakAmateurMb(), r.peakScoringMb(), r.baseDecoderBytes() / 1e6,
          r.adapterDecoderBytes() / 1e6, r.adapterFolded(), r.scoreS());
    } else {
      System.out.printf(java.util.Locale.ROOT, "weight files        %8.2f GB%n", r.fileBytes() / gb);
      System.out.printf(java.util.Locale.ROOT, "file read (1st/2nd) %8.2f s / %.2f s (%.2f GB/s "
          + "second; %.2f s CPU)%n", r.fileReadFirstS(), r.fileReadAgainS(), r.fileBytes() / gb
          / r.fileReadAgainS(), r.fileReadAgainCpuS());
      System.out.printf(java.util.Locale.ROOT, "load                %8.2f s (%.2fx the second "
          + "read; %.2f s CPU, %.2fx)%n", r.loadS(), r.loadS() / r.fileReadAgainS(), r.loadCpuS(),
          r.loadCpuS() / r.fileReadAgainCpuS());
      System.out.printf(java.util.Locale.ROOT, "weights in memory   %8.2f GB (%s, each once)%n",
          r.weightBytes() / gb, switch (o.get("precision").toLowerCase(java.util.Locale.ROOT)) {
            case "fp32", "float32" -> "fp32";
            case "bf16", "bfloat16" -> "products bf16, the rest as stored or fp32";
            case "f16", "fp16", "float16", "half" -> "products f16, the rest as stored or fp32";
            default -> "as the logged 'precision auto ->' line says";
          });
      System.out.printf(java.util.Locale.ROOT, "RSS before load     %8.0f MB (JVM + started "
          + "engine)%n", r.rssBeforeLoadMb());
      System.out.printf(java.util.Locale.ROOT, "RSS after load      %8.0f MB (peak while loading "
          + "%.0f MB)%n", r.rssAfterLoadMb(), r.peakLoadMb());
      System.out.printf(java.util.Locale.ROOT, "base decoder        %8.1f MB beyond the weights%n",
          r.baseDecoderBytes() / 1e6);
      System.out.printf(java.util.Locale.ROOT, "expert decoder      %8.1f MB beyond the weights "
          + "(LoRA %s)%n", r.adapterDecoderBytes() / 1e6, r.adapterFolded()
          ? "folded into copies" : "beside the weights");
      System.out.printf(java.util.Locale.ROOT, "peak RSS amateur    %8.0f MB (the base alone: "
          + "weights + activations)%n", r.peakAmateurMb());
      System.out.printf(java.util.Locale.ROOT, "peak RSS expert+am. %8.0f MB (%.3fx the amateur's "
          + "peak)%n", r.peakScoringMb(), r.peakScoringMb() / r.peakAmateurMb());
      System.out.printf(java.util.Locale.ROOT, "peak RSS scoring    %8.0f MB (above the RSS "
          + "before load: %.2fx the weights; expert + amateur, batch %d x %d, %.2f s a pass)%n",
          r.peakScoringMb(), (r.peakScoringMb() - r.rssBeforeLoadMb()) * 1048576.0
          / r.weightBytes(), o.integer("memory-batch"), o.integer("seq-len"), r.scoreS());
    }
    return 0;
  }

  /** MIN-MAX of --variable-tokens, checked: 1 <= MIN <= MAX. */
  private static int[] variableTokens(String text) {
    String[] parts = text.split("-");
    try {
      if (parts.length == 2) {
        int lo = Integer.parseInt(parts[0].trim());
        int hi = Integer.parseInt(parts[1].trim());
        if (1 <= lo && lo <= hi) {
          return new int[] {lo, hi};
        }
      }
    } catch (NumberFormatException e) {
      // falls through to the message below
    }
    throw new UsageException("--variable-tokens: expected MIN-MAX with 1 <= MIN <= MAX, got '"
        + text + "'");
  }

  private static void reportVariable(RuntimeBenchmark.VariableFigure f, int lanes,
      boolean json) {
    if (json) {
      System.out.printf(java.util.Locale.ROOT, "{\"workload\":\"generate-variable\","
          + "\"batch\":%d,\"requests\":%d,\"min_new\":%d,\"max_new\":%d,\"tokens\":%d,"
          + "\"static_tokens_per_s\":%.1f,\"continuous_tokens_per_s\":%.1f,"
          + "\"static_tokens_per_cpu_s\":%s,\"continuous_tokens_per_cpu_s\":%s,"
          + "\"lanes\":%d}%n", f.batch(), f.requests(), f.minNew(), f.maxNew(), f.tokens(),
          f.staticTokensPerSecond(), f.continuousTokensPerSecond(),
          jsonRate(f.staticTokensPerCpuSecond()), jsonRate(f.continuousTokensPerCpuSecond()),
          lanes);
    } else {
      System.out.printf(java.util.Locale.ROOT, "%-9s batch %4d  new %d-%d x %d  lanes %d  "
          + "static %8.0f  continuous %8.0f tokens/s (%.2fx); per CPU-second %8.0f / %8.0f "
          + "(%.2fx)%n", "variable", f.batch(), f.minNew(), f.maxNew(), f.requests(), lanes,
          f.staticTokensPerSecond(), f.continuousTokensPerSecond(),
          f.continuousTokensPerSecond() / f.staticTokensPerSecond(),
          f.staticTokensPerCpuSecond(), f.continuousTokensPerCpuSecond(),
          f.continuousTokensPerCpuSecond() / f.staticTokensPerCpuSecond());
    }
    System.out.flush();
  }

  private static RuntimeBenchmark.Figure report(RuntimeBenchmark.Figure f, int lanes,
      boolean json, String precision) {
    if (json) {
      System.out.printf("{\"workload\":\"%s\",\"batch\":%d,\"seq_len\":%d,"
          + "\"tokens_per_s\":%.1f,\"lanes\":%d,\"precision\":\"%s\"}%n", f.workload(),
          f.batch(), f.seqLen(), f.tokensPerSecond(), lanes, precision);
    } else {
      System.out.printf("%-9s batch %4d  seq %4d  lanes %d  %10.0f tokens/s  %s%n",
          f.workload(), f.batch(), f.seqLen(), lanes, f.tokensPerSecond(), precision);
    }
    System.out.flush();
    return f;
  }

  /**
   * A rate as JSON: null when it is not finite (a run shorter than the clock's 10 ms CPU-time
   * tick measures 0 CPU seconds).
   */
  private static String jsonRate(double rate) {
    return Double.isFinite(rate) ? String.format(java.util.Locale.ROOT, "%.1f", rate) : "null";
  }
}
