package org.loratransplant.cli;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.loratransplant.transfer.Method;
import org.loratransplant.transfer.Transfer;
import org.loratransplant.transfer.TransferBenchmark;
import org.loratransplant.transfer.TransferReport;
import org.loratransplant.transfer.TransferSettings;

/** {@code jobs/lt transfer}: training-free LoRA transfer (direct, LoRA-X, Cross-LoRA). */
public final class TransferCommand implements Command {
  @Override
  public String name() {
    return "transfer";
  }

  @Override
  public String summary() {
    return "Transfer a LoRA to another base model without data or training: direct reuse (copy "
        + "equal shapes), lora-x (project onto the target weights' top-k singular subspaces) or "
        + "cross-lora (align source and target singular bases, any hidden size). Writes a PEFT "
        + "adapter for the target with transfer_report.json and transfer_report.md (per module: "
        + "shapes, similarity, transferred or why not, norm ratio) and prints the Markdown. With "
        + "--benchmark, times the methods (--method, comma-separated; default all three) on a "
        + "random checkpoint of the given shape instead.";
  }

  @Override
  public int run(String[] args) {
    Options o = new Options(name(), summary())
        .value("method", "M", "direct, lora-x or cross-lora", null)
        .value("source-model", "DIR", "the adapter's base model", null)
        .value("adapter", "DIR", "the source PEFT adapter", null)
        .value("target-model", "DIR", "the model to transfer to", null)
        .value("out", "DIR", "where the target adapter and the report go", null)
        .value("rank", "K", "subspace rank of the truncated SVDs (0: min(64, smaller side / 2) "
            + "per module)", "0")
        .value("similarity-threshold", "T", "skip modules whose similarity is below T",
            String.valueOf(TransferSettings.DEFAULT_THRESHOLD))
        .value("seed", "S", "seed of the randomised SVDs (weights with both sides > "
            + "1024)", "0")
        .flag("benchmark", "time the transfers on a random checkpoint instead (see --layers ...)")
        .value("layers", "N", "benchmark: decoder layers", "32")
        .value("hidden", "H", "benchmark: hidden size", "4096")
        .value("ffn", "F", "benchmark: intermediate size", "11008")
        .value("lora-rank", "R", "benchmark: LoRA rank of the random adapter", "16")
        .value("workdir", "DIR", "benchmark: where the random checkpoint goes (deleted after)",
            System.getProperty("java.io.tmpdir"));
    if (!o.parse(args)) {
      return 0;
    }
    int rank = o.integer("rank");
    double threshold = o.number("similarity-threshold");
    if (rank < 0) {
      throw new UsageException("--rank must be >= 0, got " + rank);
    }
    if (!(threshold >= 0 && threshold <= 1)) {
      throw new UsageException("--similarity-threshold must be in [0, 1], got " + threshold);
    }
    if (o.has("benchmark")) {
      List<Method> methods = new ArrayList<>();
      try {
        for (String name : (o.has("method") ? o.get("method")
            : "direct,lora-x,cross-lora").split(",")) {
          methods.add(Method.parse(name.trim()));
        }
      } catch (IllegalArgumentException e) {
        throw new UsageException("--method: " + e.getMessage());
      }
      List<TransferBenchmark.Figures> figures = TransferBenchmark.run(o.path("workdir"),
          new TransferBenchmark.Shape(o.integer("layers"), o.integer("hidden"), o.integer("ffn"),
              o.integer("lora-rank")),
          new TransferSettings(methods.get(0), rank, threshold, o.longValue("seed")), methods,
          System.err);
      figures.forEach(System.out::println);
      return 0;
    }
    Method method;
    try {
      method = Method.parse(o.required("method"));
    } catch (IllegalArgumentException e) {
      throw new UsageException("--method: " + e.getMessage());
    }
    for (String dir : new String[] {"source-model", "adapter", "target-model"}) {
      if (!Files.isDirectory(o.path(dir))) {
        throw new UsageException("--" + dir + " " + o.get(dir) + ": no such directory");
      }
    }
    Path out = o.path("out");
    Transfer.Result r = Transfer.run(
        new TransferSettings(method, rank, threshold, o.longValue("seed")),
        o.path("source-model"), o.path("adapter"), o.path("target-model"));
    r.write(out);
    System.out.print(TransferReport.markdown(r));
    System.err.println("wrote " + out + " (" + r.transferred() + " of " + r.modules().size()
        + " modules transferred)");
    return 0;
  }
}
