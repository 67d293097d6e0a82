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

  /** Static and continuous batching on the same variable-length workload, tokens/s each. */
  public record VariableFigure(int batch, int requests, int minNew, int maxNew, long tokens,
      double staticTokensPerSecond, double continuousTokensPerSecond,
      double staticTokensPerCpuSecond, double continuousTokensPerCpuSecond) {}

  /**
   * Generation where responses differ in length, as the generate stage's (which stop at a line
   * end): {@code requests} prompts of 2 to 17 tokens (BOS and random ids), each with its own
   * token limit drawn uniformly from {@code [minNew, maxNew]} (eos ignored, so both batchings
   * make exactly the same tokens), sampled at temperature 1, top-p 0.9, {@code batch} at a time
   * (static) or on {@code batch} cache rows (continuous). Tokens/s counts generated tokens.
   */
  public VariableFigure variableGeneration(int batch, int requests, int minNew, int maxNew) {
    SplittableRandom rng = new SplittableRandom(3);
    int v = lm.config().vocabSize();
    List<int[]> prompts = new ArrayList<>();
    long[] seeds = new long[requests];
    int[] limits = new int[requests];
    long tokens = 0;
    for (int i = 0; i < requests; i++) {
      int[] ids = new int[2 + rng.nextInt(16)];
      ids[0] = lm.config().bosTokenId();
      for (int j = 1; j < ids.length; j++) {
        ids[j] = 3 + rng.nextInt(v - 3);
      }
      prompts.add(ids);
      seeds[i] = i;
      limits[i] = minNew + rng.nextInt(maxNew - minNew + 1);
      tokens += limits[i];
    }
    GenerationParams p = new GenerationParams(maxNew, 1.0, 0.9, new int[0]);
    // The two alternate, repeat by repeat, so a change in the machine's load hits both alike;
    // the process's CPU seconds are reported beside the wall clock, being less sensitive to it.
    LanguageModel.Batching[] modes = LanguageModel.Batching.values();
    double[][] wall = new double[modes.length][repeats];
    double[][] cpu = new double[modes.length][repeats];
    for (LanguageModel.Batching m : modes) {
      lm.generate(prompts, seeds, limits, p, null, batch, m, null); // warm-up
    }
    for (int i = 0; i < repeats; i++) {
      for (LanguageModel.Batching m : modes) {
        long c0 = processCpuNanos();
        long t0 = System.nanoTime();
        lm.generate(prompts, seeds, limits, p, null, batch, m, null);
        wall[m.ordinal()][i] = (System.nanoTime() - t0) / 1e9;
        cpu[m.ordinal()][i] = (processCpuNanos() - c0) / 1e9;
      }
    }
    int st = LanguageModel.Batching.STATIC.ordinal();
    int co = LanguageModel.Batching.CONTINUOUS.ordinal();
    return new VariableFigure(batch, requests, minNew, maxNew, tokens,
        tokens / middle(wall[st]), tokens / middle(wall[co]), tokens / middle(cpu[st]),
        tokens / middle(cpu[co]));
  }

  /**
   * Scoring as the score stage runs it: every pair through the expert (the base with a LoRA,
   * r 8 on q/v with random non-zero A and B) and through the amateur (the base alone). Tokens
   * counted on both passes: 2 x batch x seqLen per call.
   */
  public Figure expertScoring(int batch, int seqLen) {
    List<int[]> prompts = new ArrayList<>();
    List<int[]> responses = new ArrayList<>();
    randomSequences(batch, seqLen, 1, prompts, responses);
    try (LoraAdapter expert = randomLora(lm, 3)) {
      double secs = median(() -> {
        lm.logprobs(prompts, responses, expert, batch);
        return lm.logprobs(prompts, responses, null, batch);
      });
      return new Figure("score-expert+amateur", batch, seqLen, 2 * batch * (double) seqLen / secs);
    }
  }

  /**
   * A LoRA of {@link LoraConfig#defaults} (r 8, alpha 8, q/v) with A and B both drawn from
   * U(-0.05, 0.05), so folding it changes every adapted weight.
   */
  public static LoraAdapter randomLora(LanguageModel lm, long seed) {
    LoraAdapter a = LoraAdapter.create(LoraConfig.defaults("bench"), lm.config(),
        lm.model().manager(), seed);
    SplittableRandom rng = new SplittableRandom(seed);
    for (LoraAdapter.Pair p : a.pairs().values()) {
      float[] b = new float[(int) p.bT().getShape().size()];
      for (int i = 0; i < b.length; i++) {
        b[i] = (float) (rng.nextDouble() * 0.1 - 0.05);
      }
      p.bT().set(b);
    }
    return a;
  }

  /**
   * One LoRA training run (r 8 on q/v, AdamW, dropout 0.05, batch x seqLen random tokens per
   * step) of {@code steps} optimizer steps. Every {@code reportEvery} steps {@code report} gets
   * a line with the tokens/s of the steps since the last line and the resident memory now, so a
   * long run shows whether speed and memory stay flat. The figure is the rate over steps 2..N
   * (the first one warms the allocator and autograd up).
   */
  public Figure training(int batch, int seqLen, int steps, int reportEvery,
      java.util.function.Consumer<String> report) {
    return training(batch, seqLen, steps, 0, reportEvery, report);
  }

  /**
   * As above; with {@code answer} > 0 each sequence is a prompt of {@code seqLen - answer}
   * tokens and an answer of {@code answer} (the loss on the answer alone, as a task's
   * examples are); tokens/s still counts every position.
   */
  public Figure training(int batch, int seqLen, int steps, int answer, int reportEvery,
      java.util.function.Consumer<String> report) {
    if (answer < 0 || answer >= seqLen) {
      throw new IllegalArgumentException("answer tokens must be 0 (all) or 1.." + (seqLen - 1)
          + ", got " + answer);
    }
    List<int[]> prompts = new ArrayList<>();
    List<int[]> responses = new ArrayList<>();
    randomSequences(batch * steps, seqLen, 2, prompts, responses);
    if (answer > 0) {
      for (int i = 0; i < prompts.size(); i++) {
        int[] all = responses.get(i);
        int[] prompt = new int[seqLen - answer];
        prompt[0] = prompts.get(i)[0];
        System.arraycopy(all, 0, prompt, 1, prompt.length - 1);
        prompts.set(i, prompt);
        responses.set(i, java.util.Arrays.copyOfRange(all, prompt.length - 1, all.length));
      }
    }
    List<TrainingExample> data = new ArrayList<>();
    for (int i = 0; i < prompts.size(); i++) {
      data.add(TrainingExample.full(prompts.get(i), responses.get(i)));
    }
    TrainerConfig tc = new TrainerConfig(1e-4, 1, batch, 0.01, 0, 1, 1, 1, 0,
        TrainerConfig.LossNormaliser.WEIGHT_SUM, 0, 0);
    double[] mark = new double[3]; // seconds and tokens at the last line, seconds after step 1
    long[] firstTokens = {0};
    try (LoraAdapter a = LoraAdapter.create(LoraConfig.defaults("bench"), lm.config(),
        lm.model().manager(), 1)) {
      LoraTrainer.Result r = new LoraTrainer(tc).train(lm, a, data, null,
          (done, total, tokens, secs) -> {
            if (done == 1) {
              mark[2] = secs;
              firstTokens[0] = tokens;
            }
            if (reportEvery > 0 && (done % reportEvery == 0 || done == total)) {
              report.accept(String.format("train step %5d/%d  %8.0f tokens/s  RSS %6.0f MB",
                  done, total, (tokens - mark[1]) / Math.max(secs - mark[0], 1e-9), rssMb()));
              mark[0] = secs;
              mark[1] = tokens;
            }
          });
      double secs = r.seconds() - mark[2];
      double rate = steps > 1 && secs > 0 ? (r.tokens() - firstTokens[0]) / secs
          : r.tokensPerSecond();
      return new Figure("train", batch, seqLen, rate);
    }
  }

  /** {@code n} pairs of a BOS prompt and {@code seqLen - 1} random response tokens. */
  private void randomSequences(int n, int seqLen, long seed, List<int[]> prompts,
      List<int[]> responses) {
    SplittableRandom rng = new SplittableRandom(seed);
    int v = lm.config().vocabSize();
    for (int i = 0; i < n; i++) {
      int[] seq = new int[seqLen - 1];
      for (int j = 0; j < seq.length; j++) {
        seq[j] = 3 + rng.nextInt(v - 3);
      }
      prompts.add(new int[] {lm.config().bosTokenId()});
      responses.add(seq);
    }
  }

  private static double middle(double[] values) {
    double[] v = values.clone();
    java.util.Arrays.sort(v);
    return v[v.length / 2];
  }

  private static long processCpuNanos() {
    return ((com.sun.management.OperatingSystemMXBean)
        java.lang.management.ManagementFactory.getOperatingSystemMXBean()).getProcessCpuTime();
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

  /**
   * Load time and memory of a model, measured as a user runs it: reading the checkpoint's files
   * (Java reads into a direct buffer, the first and a second time), loading the model, then
   * scoring with an expert and an amateur as the score stage does (the same batch with a LoRA
   * and without), with the peak RSS reset after loading so that it is the peak while scoring.
   *
   * @param fileReadFirstS seconds to read every weight file, first time in this run
   * @param fileReadAgainS seconds to read them again (from the page cache when they fit)
   * @param fileReadAgainCpuS CPU seconds of the calling thread in the second read
   * @param loadS seconds of {@link LanguageModel#load}
   * @param loadCpuS CPU seconds of the calling thread in it (the load runs on one thread; on a
   *     busy machine wall seconds mostly measure the wait for a core)
   * @param fileBytes bytes of the weight files
   * @param weightBytes bytes of the weights in memory (float32, each stored once)
   * @param rssBeforeLoadMb resident memory before loading (the JVM and the started engine)
   * @param rssAfterLoadMb resident memory after loading
   * @param peakLoadMb peak resident memory up to the end of loading
   * @param peakAmateurMb peak resident memory while scoring with the base alone (after a
   *     reset), -1 if unknown
   * @param peakScoringMb peak resident memory while scoring with the expert and the amateur
   *     after that (after a reset), -1 if unknown
   * @param baseDecoderBytes what the base's decoder holds beyond the weights
   * @param adapterDecoderBytes what the expert's decoder holds (its factors or folded copies)
   * @param adapterFolded whether the expert's LoRA was folded into copies
   * @param scoreS seconds of one expert + amateur scoring pass
   */
  public record Memory(double fileReadFirstS, double fileReadAgainS, double fileReadAgainCpuS,
      double loadS, double loadCpuS, long fileBytes, long weightBytes, double rssBeforeLoadMb,
      double rssAfterLoadMb, double peakLoadMb, double peakAmateurMb, double peakScoringMb,
      long baseDecoderBytes, long adapterDecoderBytes,
      boolean adapterFolded, double scoreS) {}

  /**
   * Measures {@link Memory} for the model in {@code dir}, scoring {@code batch} sequences of
   * {@code seqLen} tokens with a LoRA of rank 8 on {@code targets} (B random, so it matters).
   */
  public static Memory memory(Path dir, ai.djl.Device device, int batch, int seqLen,
      java.util.Set<org.loratransplant.model.Projection> targets,
      org.loratransplant.model.Precision precision) {
    long fileBytes = 0;
    double first = 0;
    double again = 0;
    double againCpu = 0;
    java.lang.management.ThreadMXBean cpu = java.lang.management.ManagementFactory
        .getThreadMXBean();
    try {
      List<Path> files;
      try (java.util.stream.Stream<Path> s = Files.list(dir)) {
        files = s.filter(p -> p.getFileName().toString().endsWith(".safetensors")).sorted()
            .toList();
      }
      for (Path f : files) {
        fileBytes += Files.size(f);
      }
      first = readAll(files)[0];
      double[] second = readAll(files);
      again = second[0];
      againCpu = second[1];
    } catch (IOException e) {
      throw new java.io.UncheckedIOException("reading " + dir + ": " + e.getMessage(), e);
    }
    // Start the engine first: its native start-up is no part of loading a model.
    try (ai.djl.ndarray.NDManager warm = ai.djl.ndarray.NDManager.newBaseManager(device)) {
      warm.ones(new ai.djl.ndarray.types.Shape(4)).sum().getFloat();
    }
    double rssBefore = statusMb("VmRSS:");
    long t0 = System.nanoTime();
    // The process's CPU time: the load fills tensors on several threads.
    long c0 = processCpuNanos();
    try (LanguageModel lm = LanguageModel.load(dir, device, precision)) {
      double loadS = (System.nanoTime() - t0) / 1e9;
      double loadCpuS = (processCpuNanos() - c0) / 1e9;
      double rss = statusMb("VmRSS:");
      double peakLoad = peakRssMb();
      boolean reset = resetPeakRss();
      LoraConfig lc = new LoraConfig(8, 16, 0, java.util.EnumSet.copyOf(targets), List.of(),
          false, dir.toString());
      try (LoraAdapter expert = LoraAdapter.create(lc, lm.config(), lm.model().manager(), 1)) {
        SplittableRandom rng = new SplittableRandom(3);
        for (LoraAdapter.Pair p : expert.pairs().values()) {
          float[] b = new float[(int) p.bT().size()];
          for (int i = 0; i < b.length; i++) {
            b[i] = (float) (rng.nextGaussian() * 0.01);
          }
          p.bT().set(b);
        }
        expert.weightsChanged();
        List<int[]> prompts = new ArrayList<>();
        List<int[]> responses = new ArrayList<>();
        int v = lm.config().vocabSize();
        for (int i = 0; i < batch; i++) {
          prompts.add(new int[] {lm.config().bosTokenId()});
          responses.add(rng.ints(seqLen - 1, 3, v).toArray());
        }
        // The amateur alone first: the base's weights plus a forward's activations.
        lm.logprobs(prompts, responses, null, batch);
        double peakAmateur = reset ? peakRssMb() : -1;
        resetPeakRss();
        double scoreS = Double.MAX_VALUE;
        for (int round = 0; round < 1; round++) {
          long s0 = System.nanoTime();
          List<float[]> e = lm.logprobs(prompts, responses, expert, batch);
          List<float[]> a = lm.logprobs(prompts, responses, null, batch);
          scoreS = Math.min(scoreS, (System.nanoTime() - s0) / 1e9);
          for (float[] row : e) {
            for (float x : row) {
              if (!Float.isFinite(x)) {
                throw new IllegalStateException("a non-finite expert log-prob: " + x);
              }
            }
          }
          if (a.size() != e.size()) {
            throw new IllegalStateException("amateur and expert scored different batches");
          }
        }
        LanguageModel.DecoderStats st = lm.decoderStats();
        return new Memory(first, again, againCpu, loadS, loadCpuS, fileBytes, st.weightBytes(),
            rssBefore, rss, peakLoad, peakAmateur,
            reset ? peakRssMb() : -1, st.baseDecoderBytes(), st.adapterDecoderBytes(),
            st.adapterFolded(), scoreS);
      }
    }
  }

  /** Wall and CPU seconds to read {@code files} whole through one direct buffer. */
  private static double[] readAll(List<Path> files) throws IOException {
    java.nio.ByteBuffer buf = java.nio.ByteBuffer.allocateDirect(16 << 20);
    java.lang.management.ThreadMXBean cpu = java.lang.management.ManagementFactory
        .getThreadMXBean();
    long c0 = cpu.getCurrentThreadCpuTime();
    long t0 = System.nanoTime();
    for (Path f : files) {
      try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(f)) {
        while (true) {
          buf.clear();
          if (ch.read(buf) < 0) {
            break;
          }
        }
      }
    }
    return new double[] {(System.nanoTime() - t0) / 1e9,
        (cpu.getCurrentThreadCpuTime() - c0) / 1e9};
  }

  /** Resets VmHWM to the current RSS (Linux 4.0+); false where that is not possible. */
  static boolean resetPeakRss() {
    try {
      Files.writeString(Path.of("/proc/self/clear_refs"), "5");
      return true;
    } catch (IOException | RuntimeException e) {
      return false;
    }
  }

  private static double statusMb(String field) {
    try {
      for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
        if (line.startsWith(field)) {
          return Long.parseLong(line.replaceAll("[^0-9]", "")) / 1024.0;
        }
      }
    } catch (IOException | NumberFormatException e) {
      return -1;
    }
    return -1;
  }

  /** Peak resident memory of this process (VmHWM) in MB, or -1 where /proc is unavailable. */
  public static double peakRssMb() {
    return statusMb("VmHWM:");
  }

  /** Resident memory of this process now (VmRSS) in MB, or -1 where /proc is unavailable. */
  public static double rssMb() {
    return statusMb("VmRSS:");
  }
}
