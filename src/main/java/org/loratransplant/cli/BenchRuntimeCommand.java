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
        .value("train-steps", "N", "optimizer steps per training run (tokens/s over steps "
            + "2..N)", "4")
        .value("report-every", "K", "print training tokens/s and resident memory every K "
            + "steps (0: never)", "100")
        .value("seq-len", "T", "scoring/training sequence length", "128")
        .value("new-tokens", "N", "tokens generated per request", "128")
        .value("lanes", "L,..", "threads per batch to measure scoring and generation with "
            + "(each runs a part of the batch on its own thread)", "1,2")
        .value("repeats", "R", "timed repeats per figure (median reported)", "3")
        .flag("json", "one JSON object per line instead of a table");
    ModelCli.declare(o);
    if (!o.parse(args)) {
      return 0;
    }
    for (int lanes : o.integers("lanes")) {
      if (lanes < 1) {
        throw new UsageException("--lanes: each count must be at least 1, got " + lanes);
      }
    }
    List<RuntimeBenchmark.Figure> figures = new ArrayList<>();
    try (ModelCli.Loaded m = ModelCli.load(o)) {
      RuntimeBenchmark b = new RuntimeBenchmark(m.model(), o.integer("repeats"));
      int t = Math.min(o.integer("seq-len"), m.model().config().maxPositions());
      int n = Math.min(o.integer("new-tokens"), m.model().config().maxPositions() - 1);
      for (int lanes : o.integers("lanes")) {
        m.model().setLanes(lanes);
        for (int batch : o.integers("score-batches")) {
          figures.add(report(b.scoring(batch, t), lanes, o.has("json")));
        }
        for (int batch : o.integers("generate-batches")) {
          figures.add(report(b.generation(batch, n), lanes, o.has("json")));
        }
      }
      m.model().setLanes(1);
      for (int batch : o.integers("expert-batches")) {
        figures.add(report(b.expertScoring(batch, t), 1, o.has("json")));
      }
      int steps = o.integer("train-steps");
      if (steps < 1) {
        throw new UsageException("--train-steps must be at least 1, got " + steps);
      }
      for (int batch : o.integers("train-batches")) {
        figures.add(report(b.training(batch, t, steps, o.integer("report-every"), line -> {
          System.out.println(o.has("json") ? "{\"progress\":\"" + line + "\"}" : line);
          System.out.flush();
        }), 1, o.has("json")));
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

  private static RuntimeBenchmark.Figure report(RuntimeBenchmark.Figure f, int lanes,
      boolean json) {
    if (json) {
      System.out.printf("{\"workload\":\"%s\",\"batch\":%d,\"seq_len\":%d,"
          + "\"tokens_per_s\":%.1f,\"lanes\":%d}%n", f.workload(), f.batch(), f.seqLen(),
          f.tokensPerSecond(), lanes);
    } else {
      System.out.printf("%-9s batch %4d  seq %4d  lanes %d  %10.0f tokens/s%n", f.workload(),
          f.batch(), f.seqLen(), lanes, f.tokensPerSecond());
    }
    System.out.flush();
    return f;
  }
}
