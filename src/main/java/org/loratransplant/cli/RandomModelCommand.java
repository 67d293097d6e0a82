package org.loratransplant.cli;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import org.loratransplant.bench.RandomModel;
import org.loratransplant.safetensors.DType;

/** {@code jobs/lt random-model}: writes a random-weight checkpoint of a published shape. */
public final class RandomModelCommand implements Command {
  @Override
  public String name() {
    return "random-model";
  }

  @Override
  public String summary() {
    return "Write a random-weight Llama checkpoint (HF layout, tokenizer included) with the "
        + "published shape of a real model, for load, memory and speed benchmarks without a "
        + "download. Shapes: " + RandomModel.SHAPES.stream().map(s -> s.name() + " ("
        + String.format(Locale.ROOT, "%.2fB", s.parameters() / 1e9) + ")").toList() + ".";
  }

  @Override
  public int run(String[] args) {
    Options o = new Options(name(), summary())
        .value("shape", "NAME", "smollm-135m, smollm-360m, llama-1b or llama-7b", null)
        .value("out", "DIR", "directory to create (must not exist)", null)
        .value("seed", "S", "random seed", "0")
        .value("dtype", "T", "f32, bf16 or f16", "f32")
        .value("layers", "N", "keep only the first N decoder layers of the shape (0: all), for "
            + "the largest part of a shape that fits in memory", "0");
    if (!o.parse(args)) {
      return 0;
    }
    RandomModel.Shape shape;
    try {
      shape = RandomModel.shape(o.required("shape"));
    } catch (IllegalArgumentException e) {
      throw new UsageException("--shape: " + e.getMessage());
    }
    int layers = o.integer("layers");
    if (layers < 0) {
      throw new UsageException("--layers: must be at least 0, got " + layers);
    }
    if (layers > 0 && layers < shape.layers()) {
      shape = RandomModel.scaled(shape, layers, shape.vocab(), shape.maxPositions());
    }
    DType dtype = switch (o.get("dtype")) {
      case "f32" -> DType.F32;
      case "bf16" -> DType.BF16;
      case "f16" -> DType.F16;
      default -> throw new UsageException("--dtype: f32, bf16 or f16, got " + o.get("dtype"));
    };
    Path out = Path.of(o.required("out"));
    if (Files.exists(out)) {
      throw new UsageException("--out " + out + " already exists");
    }
    long t0 = System.nanoTime();
    long bytes = RandomModel.write(shape, out, o.longValue("seed"), dtype);
    System.out.printf(Locale.ROOT, "lt random-model: wrote %s (%s, %.3fB parameters, %.2f GB of "
        + "%s weights) in %.1f s%n", out, shape.name(), shape.parameters() / 1e9, bytes / 1e9,
        dtype, (System.nanoTime() - t0) / 1e9);
    return 0;
  }
}
