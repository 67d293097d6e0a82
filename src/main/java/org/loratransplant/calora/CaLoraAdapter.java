package org.loratransplant.calora;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.model.Adapter;
import org.loratransplant.model.ModelConfig;
import org.loratransplant.model.Projection;

/**
 * A LoRA with CA-LoRA's recovery modules beside it: each projection's output gets the LoRA
 * update plus {@code sigma(x D) U}. The recovery modules are non-linear, so this adapter cannot
 * be folded into the weights; inference runs it beside them (the eager path of
 * {@link org.loratransplant.model.LanguageModel}).
 *
 * <p>On disk: a normal PEFT LoRA directory (what PEFT can load: the LoRA part alone) plus
 * {@value #RECOVERY_FILE} ({@link RecoveryModules}); {@link #read} and every {@code --adapter}
 * option load both.
 */
public final class CaLoraAdapter implements Adapter, AutoCloseable {
  public static final String RECOVERY_FILE = "recovery.safetensors";
  private final LoraAdapter lora;
  private final RecoveryModules recovery;

  public CaLoraAdapter(LoraAdapter lora, RecoveryModules recovery) {
    this.lora = java.util.Objects.requireNonNull(lora, "lora");
    this.recovery = java.util.Objects.requireNonNull(recovery, "recovery");
  }

  public LoraAdapter lora() {
    return lora;
  }

  public RecoveryModules recovery() {
    return recovery;
  }

  /** The LoRA's parameters, then the recovery modules'. */
  public List<NDArray> parameters() {
    List<NDArray> out = new ArrayList<>(lora.parameters());
    out.addAll(recovery.parameters());
    return out;
  }

  public long parameterCount() {
    return lora.parameterCount() + recovery.parameterCount();
  }

  @Override
  public NDArray delta(int layer, Projection projection, NDArray x, boolean training) {
    NDArray a = lora.delta(layer, projection, x, training);
    NDArray r = recovery.delta(layer, projection, x, training);
    return a == null ? r : r == null ? a : a.add(r);
  }

  /** The LoRA part's counter stands for both parts: training bumps it after every step. */
  @Override
  public long weightsVersion() {
    return lora.weightsVersion();
  }

  @Override
  public void weightsChanged() {
    lora.weightsChanged();
  }

  /** Whether {@code dir} holds a CA-LoRA adapter (a PEFT LoRA plus the recovery file). */
  public static boolean isCaLora(Path dir) {
    return Files.isRegularFile(dir.resolve(RECOVERY_FILE));
  }

  /** Reads the LoRA (PEFT layout) and the recovery modules of {@code dir} for {@code base}. */
  public static CaLoraAdapter read(Path dir, ModelConfig base, NDManager parent) {
    LoraAdapter lora = PeftFormat.read(dir, base, parent);
    try {
      return new CaLoraAdapter(lora, RecoveryModules.read(dir.resolve(RECOVERY_FILE), base,
          parent));
    } catch (RuntimeException e) {
      lora.close();
      throw e;
    }
  }

  /**
   * Writes the PEFT LoRA and {@value #RECOVERY_FILE} into {@code dir}; the directory appears
   * complete or not at all (written to a temporary sibling, then renamed).
   */
  public void write(Path dir) {
    Path abs = dir.toAbsolutePath();
    Path tmp = abs.resolveSibling("." + abs.getFileName() + ".calora-tmp-"
        + ProcessHandle.current().pid());
    try {
      deleteRecursively(tmp);
      PeftFormat.write(lora, tmp);
      recovery.write(tmp.resolve(RECOVERY_FILE));
      if (Files.exists(abs)) {
        deleteRecursively(abs);
      }
      Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE);
    } catch (IOException e) {
      throw new IllegalStateException("cannot write the CA-LoRA adapter to " + dir + ": "
          + e.getMessage(), e);
    } finally {
      try {
        deleteRecursively(tmp);
      } catch (IOException ignored) {
        // nothing more to do
      }
    }
  }

  private static void deleteRecursively(Path p) throws IOException {
    if (!Files.exists(p)) {
      return;
    }
    try (Stream<Path> s = Files.walk(p)) {
      for (Path q : s.sorted(Comparator.reverseOrder()).toList()) {
        Files.delete(q);
      }
    }
  }

  @Override
  public void close() {
    try {
      recovery.close();
    } finally {
      lora.close();
    }
  }

  @Override
  public String toString() {
    return lora + " + " + recovery;
  }
}
