package org.loratransplant.cli;

import java.nio.file.Files;
import java.util.List;
import org.loratransplant.compress.Compressor;

/** {@code jobs/lt compress}: a compressed copy of a base model (NF4, int8, pruned). */
public final class CompressCommand implements Command {
  @Override
  public String name() {
    return "compress";
  }

  @Override
  public String summary() {
    return "Write a compressed copy of a base model: nf4 (QLoRA's 4-bit NormalFloat, blocks of "
        + "64, double-quantised constants), int8 (per output channel) or prune (magnitude, or "
        + "--structured whole output channels, to --sparsity). Only q/k/v/o/gate/up/down_proj "
        + "are compressed. The output is a normal model directory with the dequantised float32 "
        + "weights (load it, or train a LoRA over it with train-lora: QLoRA), plus the quantised "
        + "payload (compression.safetensors) and compression.json with each tensor's error.";
  }

  @Override
  public int run(String[] args) {
    Options o = new Options(name(), summary())
        .value("model", "DIR", "the model to compress", null)
        .value("method", "M", "nf4, int8 or prune", null)
        .value("out", "DIR", "where the compressed model goes (must not exist)", null)
        .value("sparsity", "S", "prune: fraction of entries (or rows) to zero, in (0, 1)", null)
        .flag("structured", "prune whole output channels by L2 norm instead of single weights");
    if (!o.parse(args)) {
      return 0;
    }
    Compressor.Settings settings;
    try {
      Compressor.Method method = Compressor.Method.parse(o.required("method"));
      settings = new Compressor.Settings(method,
          o.get("sparsity") == null ? 0 : o.number("sparsity"), o.has("structured"));
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage());
    }
    if (!Files.isDirectory(o.path("model"))) {
      throw new UsageException("--model " + o.get("model") + ": no such directory");
    }
    if (Files.exists(o.path("out"))) {
      throw new UsageException("--out " + o.get("out") + " exists; choose another directory");
    }
    List<Compressor.TensorError> errors = Compressor.compress(o.path("model"), o.path("out"),
        settings);
    double maxAbs = errors.stream().mapToDouble(Compressor.TensorError::maxAbs).max().orElse(0);
    double rel = errors.stream().mapToDouble(Compressor.TensorError::relativeFrobenius).max()
        .orElse(0);
    System.err.printf("lt compress: wrote %s (%s, %d tensors; worst max-abs error %.3g, worst "
        + "relative Frobenius error %.3g; see %s)%n", o.get("out"), settings.method().id(),
        errors.size(), maxAbs, rel, Compressor.REPORT_FILE);
    return 0;
  }
}
