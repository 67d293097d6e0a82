package org.loratransplant.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.SplittableRandom;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.LoraConfig;
import org.loratransplant.model.GenerationParams;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.train.LoraTrainer;
import org.loratransplant.train.TrainerConfig;
import org.loratransplant.train.TrainingExample;

/**
 * Throughput of the runtime's workloads on one model: teacher-forced scoring, sampled generation
 * (a KV cache, fixed length: eos ignored) and LoRA training steps. Each figure is the median of
 * several timed repeats after a warm-up.
 */
public final class RuntimeBenchmark {
  /** One measured figure. */
  public record Figure(String workload, int batch, int seqLen, double tokensPerSecond) {}

  private final LanguageModel lm;
  private final int repeats;

  public RuntimeBenchmark(LanguageModel lm, int repeats) {
    this.lm = lm;
    this.repeats = repeats;
  }

  public Figure scoring(int batch, int seqLen) {
    SplittableRandom rng = new SplittableRandom(1);
    List<int[]> prompts = new ArrayList<>();
    List<int[]> responses = new ArrayList<>();
    int v = lm.config().vocabSize();
    for (int i = 0; i < batch; i++) {
      int[] seq = new int[seqLen - 1];
      for (int j = 0; j < seq.length; j++) {
        seq[j] = 3 + rng.nextInt(v - 3);
      }
      prompts.add(new int[] {lm.config().bosTokenId()});
      responses.add(seq);
    }
    double secs = median(() -> lm.logprobs(prompts, responses, null, batch));
    return new Figure("score", batch, seqLen, batch * (double) seqLen / secs);
  }

  public Figure generation(int batch, int newTokens) {
    List<int[]> prompts = Collections.nCopies(batch, new int[] {lm.config().bosTokenId()});
    long[] seeds = new long[batch];
    for (int i = 0; i < batch; i++) {
      seeds[i] = i;
    }
    GenerationParams p = new GenerationParams(newTokens, 1.0, 0.9, new int[0]);
    double secs = median(() -> lm.generate(prompts, seeds, p, null, batch));
    return new Figure("generate", batch, newTokens, batch * (double) newTokens / secs);
  }

  /** LoRA (r 8 on q/v) training tokens per second at the given batch and sequence length. */
  public Figure training(int batch, int seqLen) {
    SplittableRandom rng = new SplittableRandom(2);
    List<TrainingExample> data = new ArrayList<>();
    int v = lm.config().vocabSize();
    for (int i = 0; i < batch * 4; i++) {
      int[] seq = new int[seqLen - 1];
      for (int j = 0; j < seq.length; j++) {
        seq[j] = 3 + rng.nextInt(v - 3);
      }
      data.add(TrainingExample.full(new int[] {lm.config().bosTokenId()}, seq));
    }
    TrainerConfig tc = new TrainerConfig(1e-4, 1, batch, 0.01, 0, 1, 1, 1, 0,
        TrainerConfig.LossNormaliser.WEIGHT_SUM, 0, 0);
    double[] best = {0};
    median(() -> {
      try (LoraAdapter a = LoraAdapter.create(LoraConfig.defaults("bench"), lm.config(),
          lm.model().manager(), 1)) {
        LoraTrainer.Result r = new LoraTrainer(tc).train(lm, a, data, null);
        best[0] = Math.max(best[0], r.tokensPerSecond());
        return r;
      }
    });
    return new Figure("train", batch, seqLen, best[0]);
  }

  private double median(java.util.function.Supplier<?> work) {
    work.get(); // warm-up
    double[] t = new double[repeats];
    for (int i = 0; i < repeats; i++) {
      long t0 = System.nanoTime();
      work.get();
      t[i] = (System.nanoTime() - t0) / 1e9;
    }
    java.util.Arrays.sort(t);
    return t[repeats / 2];
  }

  /** Peak resident memory of this process (VmHWM) in MB, or -1 where /proc is unavailable. */
  public static double peakRssMb() {
    try {
      for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
        if (line.startsWith("VmHWM:")) {
          return Long.parseLong(line.replaceAll("[^0-9]", "")) / 1024.0;
        }
      }
    } catch (IOException | NumberFormatException e) {
      return -1;
    }
    return -1;
  }
}
