package org.loratransplant.calora;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.loratransplant.compress.Compressor;

/**
 * One compression of the base CA-LoRA adapts to, as {@code --compress} spells it: {@code nf4},
 * {@code int8}, or {@code prune[:sparsity]} (magnitude pruning, sparsity in (0, 1), default
 * 0.5). {@link #id} names its directories and rows ({@code nf4}, {@code int8}, {@code prune-75}).
 */
public record CompressionLevel(String id, Compressor.Settings settings) {
  public static final double DEFAULT_SPARSITY = 0.5;

  /** Parses one level; the message names the bad value and the accepted forms. */
  public static CompressionLevel parse(String spec) {
    String s = spec.strip().toLowerCase(Locale.ROOT);
    String usage = " (nf4, int8 or prune[:sparsity], sparsity in (0, 1))";
    if (s.equals("nf4") || s.equals("int8")) {
      return new CompressionLevel(s, new Compressor.Settings(Compressor.Method.parse(s), 0,
          false));
    }
    if (s.equals("prune") || s.startsWith("prune:")) {
      double sparsity = DEFAULT_SPARSITY;
      if (s.startsWith("prune:")) {
        try {
          sparsity = Double.parseDouble(s.substring("prune:".length()));
        } catch (NumberFormatException e) {
          throw new IllegalArgumentException("--compress '" + spec + "': the sparsity is not a "
              + "number" + usage);
        }
      }
      if (!(sparsity > 0 && sparsity < 1)) {
        throw new IllegalArgumentException("--compress '" + spec + "': sparsity " + sparsity
            + " is not in (0, 1)" + usage);
      }
      return new CompressionLevel("prune-" + trim(sparsity * 100),
          new Compressor.Settings(Compressor.Method.PRUNE, sparsity, false));
    }
    throw new IllegalArgumentException("--compress '" + spec + "' is not a compression" + usage);
  }

  /** A comma-separated list of levels, e.g. {@code nf4,int8,prune:0.5,prune:0.75}. */
  public static List<CompressionLevel> parseList(String specs) {
    List<CompressionLevel> out = new ArrayList<>();
    for (String s : specs.split(",")) {
      if (!s.isBlank()) {
        CompressionLevel l = parse(s);
        if (out.stream().anyMatch(o -> o.id().equals(l.id()))) {
          throw new IllegalArgumentException("--compress names " + l.id() + " twice");
        }
        out.add(l);
      }
    }
    if (out.isEmpty()) {
      throw new IllegalArgumentException("--compress names no compression (nf4, int8 or "
          + "prune[:sparsity])");
    }
    return out;
  }

  private static String trim(double v) {
    return v == Math.rint(v) ? Long.toString((long) v) : Double.toString(v);
  }
}
