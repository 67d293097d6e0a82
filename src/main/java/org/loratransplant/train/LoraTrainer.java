package org.loratransplant.train;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.model.Adapter;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.model.LlamaModel;
import org.loratransplant.safetensors.SafeTensorsFile;
import org.loratransplant.safetensors.SafeTensorsWriter;
import org.loratransplant.safetensors.TensorData;
import org.loratransplant.train.objective.MaskedCrossEntropy;
import org.loratransplant.train.objective.ModelOutputs;
import org.loratransplant.train.objective.Objective;
import org.loratransplant.train.objective.TeacherOutputs;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Fits a LoRA by minimising an {@link Objective} (by default the causal-LM loss on response
 * tokens, each weighted by its mask weight: {@link MaskedCrossEntropy}).
 *
 * <p>Deterministic: the data order of epoch e is a seeded shuffle, dropout is reseeded per
 * micro-batch from (seed, index), NEFTune noise comes from a Java RNG seeded the same way. So the
 * same seed and data give the same adapter bytes, and a run resumed from a checkpoint replays the
 * remaining steps exactly as the uninterrupted run would.
 */
public final class LoraTrainer {
  private static final Logger LOG = LoggerFactory.getLogger(LoraTrainer.class);
  private static final ObjectMapper JSON = new ObjectMapper();
  /** The file a complete checkpoint holds (written last). */
  public static final String STATE_FILE = "trainer_state.json";
  private static final String OPTIMIZER_FILE = "optimizer.safetensors";

  private final TrainerConfig config;
  private final Objective objective;
  private final StepListener listener;

  /** Told after every optimizer step (and the checkpoint written at it, if any). */
  @FunctionalInterface
  public interface StepListener {
    /**
     * @param done the steps done so far
     * @param checkpoint the checkpoint directory written at this step, or null
     */
    void afterStep(int done, Path checkpoint);
  }

  /** Trains with the masked, weighted cross-entropy. */
  public LoraTrainer(TrainerConfig config) {
    this(config, MaskedCrossEntropy.INSTANCE);
  }

  /**
   * Trains with {@code objective}; its teacher outputs are computed per micro-batch before the
   * student's forward, outside gradient recording.
   */
  public LoraTrainer(TrainerConfig config, Objective objective) {
    this(config, objective, null);
  }

  private LoraTrainer(TrainerConfig config, Objective objective, StepListener listener) {
    this.config = config;
    this.objective = java.util.Objects.requireNonNull(objective, "objective");
    this.listener = listener;
  }

  /** This trainer, telling {@code l} after every step (copying checkpoints elsewhere, tests). */
  public LoraTrainer listening(StepListener l) {
    return new LoraTrainer(config, objective, l);
  }

  /** Losses (one per optimizer step, averaged over its micro-batches) and throughput. */
  public record Result(List<Double> losses, int steps, long tokens, double seconds,
      int resumedFromStep) {
    public double tokensPerSecond() {
      return seconds > 0 ? tokens / seconds : 0;
    }
  }

  /**
   * Trains {@code adapter} in place on {@code data}. With a {@code checkpointDir}, checkpoints
   * are written there every {@code checkpointEvery} steps and the newest complete one is resumed.
   */
  public Result train(LanguageModel lm, LoraAdapter adapter, List<TrainingExample> data,
      Path checkpointDir) {
    return train(lm, adapter, data, checkpointDir, null);
  }

  /**
   * Told after every optimizer step with the throughput so far (benchmarks print throughput and
   * memory over a long run; tests check that nothing accumulates from step to step).
   */
  @FunctionalInterface
  public interface ProgressListener {
    /**
     * @param done optimizer steps completed so far (counting resumed ones)
     * @param tokens tokens trained on since this run started
     * @param seconds since this run started
     */
    void afterStep(int done, int totalSteps, long tokens, double seconds);
  }

  /** As above, telling {@code progress} (may be null) after every optimizer step. */
  public Result train(LanguageModel lm, LoraAdapter adapter, List<TrainingExample> data,
      Path checkpointDir, ProgressListener progress) {
    return exclusive(() -> fit(lm, adapter, adapter.parameters(), data, checkpointDir, adapter,
        progress));
  }

  /**
   * Trains {@code params} (arrays {@code adapter}'s forward reads, e.g. a LoRA plus CA-LoRA's
   * recovery modules) in place on {@code data}, with no checkpoints.
   */
  public Result train(LanguageModel lm, Adapter adapter, List<NDArray> params,
      List<TrainingExample> data) {
    return exclusive(() -> fit(lm, adapter, params, data, null, null, null));
  }

  /** Runs one training, alone in this JVM and with this thread's grad mode off. */
  private static Result exclusive(java.util.function.Supplier<Result> training) {
    // DJL's PyTorch engine lets one GradientCollector record at a time in a JVM (a second one
    // throws "already collecting", and its grad mode broke the first one's in-place updates:
    // seen with two fleet train tasks in one executor), so trainings in one JVM take turns.
    if (!ONE_AT_A_TIME.tryLock()) {
      LOG.info("another training runs in this JVM: waiting for it to end");
      ONE_AT_A_TIME.lock();
    }
    // Gradients are recorded inside each GradientCollector only: the optimiser's in-place
    // updates need grad mode off. PyTorch's grad mode is per thread and on by default; DJL turns
    // it off only in the thread that started the engine, so a Spark task thread had it on
    // ("a leaf Variable that requires grad is being used in an in-place operation").
    boolean pytorch = "PyTorch".equals(ai.djl.engine.Engine.getDefaultEngineName());
    boolean gradMode = pytorch && ai.djl.pytorch.jni.JniUtils.isGradMode();
    try {
      if (gradMode) {
        ai.djl.pytorch.jni.JniUtils.setGradMode(false);
      }
      return training.get();
    } finally {
      if (gradMode) {
        ai.djl.pytorch.jni.JniUtils.setGradMode(true);
      }
      ONE_AT_A_TIME.unlock();
    }
  }

  /** Held while a training runs in this JVM. */
  private static final java.util.concurrent.locks.ReentrantLock ONE_AT_A_TIME =
      new java.util.concurrent.locks.ReentrantLock(true);

  /**
   * The loop; {@code lora} (checkpointed and resumed) only when {@code checkpointDir} is set;
   * {@code progress} (may be null) is told after every optimizer step.
   */
  private Result fit(LanguageModel lm, Adapter adapter, List<NDArray> params,
      List<TrainingExample> data, Path checkpointDir, LoraAdapter lora,
      ProgressListener progress) {
    if (data.isEmpty()) {
      throw new IllegalArgumentException("no training examples");
    }
    for (int i = 0; i < data.size(); i++) {
      if (data.get(i).length() > lm.config().maxPositions()) {
        throw new IllegalArgumentException("training example " + i + " has "
            + data.get(i).length() + " tokens, more than the model's "
            + lm.config().maxPositions() + " positions");
      }
    }
    List<int[]> micro = microBatches(data.size());
    int totalSteps = (micro.size() + config.gradAccumulation() - 1) / config.gradAccumulation();
    LinearSchedule schedule = LinearSchedule.of(config.learningRate(), totalSteps,
        config.warmupRatio());
    params.forEach(p -> p.setRequiresGradient(true));
    LlamaModel model = lm.model();
    String fingerprint = lora == null ? null : fingerprint(data, lora);
    try (NDManager optManager = model.manager().newSubManager()) {
      AdamW opt = new AdamW(params, config.weightDecay(), optManager);
      int start = checkpointDir == null ? 0 : resume(checkpointDir, fingerprint, lora, opt);
      List<Double> losses = new ArrayList<>();
      long tokens = 0;
      long t0 = System.nanoTime();
      for (int step = start; step < totalSteps; step++) {
        int from = step * config.gradAccumulation();
        int to = Math.min(micro.size(), from + config.gradAccumulation());
        double lossSum = 0;
        for (int mb = from; mb < to; mb++) {
          lossSum += microStep(model, adapter, data, micro.get(mb), mb, to - from);
          for (int i : micro.get(mb)) {
            tokens += data.get(i).length();
          }
        }
        double loss = lossSum / (to - from);
        losses.add(loss);
        double lr = schedule.rate(step);
        applyGradients(params, opt, lr);
        adapter.weightsChanged();
        int done = step + 1;
        if (config.logEvery() > 0 && (done % config.logEvery() == 0 || done == totalSteps)) {
          double secs = (System.nanoTime() - t0) / 1e9;
          double eta = secs / (done - start) * (totalSteps - done);
          LOG.info(String.format("train step %d/%d loss %.4f lr %.2e %.0f tok/s ETA %s", done,
              totalSteps, loss, lr, tokens / Math.max(secs, 1e-9), duration(eta)));
        }
        Path saved = null;
        if (checkpointDir != null && config.checkpointEvery() > 0
            && done % config.checkpointEvery() == 0 && done < totalSteps) {
          saved = saveCheckpoint(checkpointDir, done, fingerprint, lora, opt);
        }
        if (listener != null) {
          listener.afterStep(done, saved);
        }
        if (progress != null) {
          progress.afterStep(done, totalSteps, tokens, (System.nanoTime() - t0) / 1e9);
        }
      }
      params.forEach(p -> p.setRequiresGradient(false));
      return new Result(losses, totalSteps, tokens, (System.nanoTime() - t0) / 1e9, start);
    }
  }

  /** Micro-batches of example indices: each epoch a seeded shuffle cut into batches. */
  List<int[]> microBatches(int n) {
    List<int[]> out = new ArrayList<>();
    for (int e = 0; e < config.epochs(); e++) {
      int[] order = new int[n];
      for (int i = 0; i < n; i++) {
        order[i] = i;
      }
      SplittableRandom rng = new SplittableRandom(config.seed() * 1_000_003L + e);
      for (int i = n - 1; i > 0; i--) {
        int j = rng.nextInt(i + 1);
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
      }
      for (int s = 0; s < n; s += config.batchSize()) {
        out.add(java.util.Arrays.copyOfRange(order, s, Math.min(n, s + config.batchSize())));
      }
    }
    return out;
  }

  /** Forward + backward of one micro-batch; returns its (unscaled) loss. */
  private double microStep(LlamaModel model, Adapter adapter, List<TrainingExample> data,
      int[] batch, int index, int accumulation) {
    Engine.getInstance().setRandomSeed((int) (config.seed() * 7919 + index));
    try (NDManager scope = model.manager().newSubManager()) {
      Batch b = Batch.of(data, batch, config.normaliser());
      org.loratransplant.model.IntraOpThreads.forWork(model.config(),
          (long) b.rows() * b.length());
      TeacherOutputs teacher = objective.teach(b.tokens(), scope); // no gradient recorded yet
      try (GradientCollector gc = Engine.getInstance().newGradientCollector()) {
        NDArray noise = null;
        if (config.neftuneAlpha() > 0) {
          noise = neftune(scope, b, model.config().hiddenSize(), index);
        }
        ModelOutputs student = ModelOutputs.run(model, adapter, b.tokens(), scope, noise, true,
            objective.studentLayers());
        NDArray loss = objective.loss(student, b.tokens(), teacher);
        gc.backward(loss.div((float) accumulation));
        return loss.getFloat();
      }
    }
  }

  /** NEFTune: uniform noise of magnitude alpha / sqrt(T * E) on the input embeddings. */
  private NDArray neftune(NDManager scope, Batch b, int hidden, int index) {
    double mag = config.neftuneAlpha() / Math.sqrt((double) b.length() * hidden);
    SplittableRandom rng = new SplittableRandom(config.seed() * 31 + index * 1_000_003L + 17);
    float[] noise = new float[b.rows() * b.length() * hidden];
    for (int i = 0; i < noise.length; i++) {
      noise[i] = (float) ((rng.nextDouble() * 2 - 1) * mag);
    }
    return scope.create(noise, new Shape(b.rows(), b.length(), hidden));
  }

  private void applyGradients(List<NDArray> params, AdamW opt, double lr) {
    List<NDArray> grads = new ArrayList<>();
    double sq = 0;
    for (NDArray p : params) {
      NDArray g = p.getGradient();
      grads.add(g);
      try (NDArray square = g.square(); NDArray s = square.sum()) {
        sq += s.getFloat();
      }
    }
    double norm = Math.sqrt(sq);
    if (config.maxGradNorm() > 0) {
      double coef = config.maxGradNorm() / (norm + 1e-6);
      if (coef < 1) {
        grads.forEach(g -> g.muli((float) coef));
      }
    }
    opt.step(params, grads, lr);
    for (NDArray g : grads) {
      g.subi(g); // the gradient buffer is shared with the parameter: zero it for the next step
      g.close();
    }
  }

  // ---- checkpoints -------------------------------------------------------------------------

  private Path saveCheckpoint(Path dir, int step, String fingerprint, LoraAdapter adapter,
      AdamW opt) {
    Path target = dir.resolve(String.format("checkpoint-%08d", step));
    Path tmp = dir.resolve(".tmp-" + target.getFileName());
    try {
      Files.createDirectories(dir);
      PeftFormat.write(adapter, tmp);
      Map<String, TensorData> moments = new LinkedHashMap<>();
      for (int i = 0; i < opt.firstMoments().size(); i++) {
        NDArray m = opt.firstMoments().get(i);
        NDArray v = opt.secondMoments().get(i);
        moments.put("m." + i, TensorData.ofFloat32(m.getShape().getShape(), m.toFloatArray()));
        moments.put("v." + i, TensorData.ofFloat32(v.getShape().getShape(), v.toFloatArray()));
      }
      SafeTensorsWriter.write(tmp.resolve(OPTIMIZER_FILE), moments,
          Map.of("adam_steps", Long.toString(opt.steps())));
      Map<String, Object> state = new LinkedHashMap<>();
      state.put("step", step);
      state.put("fingerprint", fingerprint);
      Files.writeString(tmp.resolve(STATE_FILE), JSON.writeValueAsString(state));
      Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
      LOG.info("checkpoint at step {} -> {}", step, target);
      return target;
    } catch (IOException e) {
      throw new IllegalStateException("cannot write checkpoint " + target + ": " + e.getMessage(),
          e);
    }
  }

  /** Restores the newest complete checkpoint; returns the step to continue from (0 if none). */
  private int resume(Path dir, String fingerprint, LoraAdapter adapter, AdamW opt) {
    if (!Files.isDirectory(dir)) {
      return 0;
    }
    Path latest;
    try (Stream<Path> s = Files.list(dir)) {
      latest = s.filter(p -> p.getFileName().toString().startsWith("checkpoint-"))
          .filter(p -> Files.isRegularFile(p.resolve(STATE_FILE)))
          .max(Path::compareTo).orElse(null);
    } catch (IOException e) {
      throw new IllegalStateException("cannot list " + dir + ": " + e.getMessage(), e);
    }
    if (latest == null) {
      return 0;
    }
    try {
      JsonNode state = JSON.readTree(latest.resolve(STATE_FILE).toFile());
      if (!fingerprint.equals(state.path("fingerprint").asText())) {
        throw new IllegalStateException(latest + " was written for other data or settings; "
            + "remove " + dir + " (or use --force) to start over");
      }
      try (NDManager tmp = adapter.parameters().get(0).getManager().newSubManager();
          LoraAdapter saved = PeftFormat.read(latest, modelConfigOf(adapter, latest), tmp)) {
        List<NDArray> ours = adapter.parameters();
        List<NDArray> theirs = saved.parameters();
        for (int i = 0; i < ours.size(); i++) {
          ours.get(i).set(theirs.get(i).toFloatArray());
        }
        adapter.weightsChanged();
      }
      List<float[]> m = new ArrayList<>();
      List<float[]> v = new ArrayList<>();
      long adamSteps;
      try (SafeTensorsFile f = SafeTensorsFile.open(latest.resolve(OPTIMIZER_FILE))) {
        for (int i = 0; i < adapter.parameters().size(); i++) {
          m.add(f.readFloat32("m." + i));
          v.add(f.readFloat32("v." + i));
        }
        adamSteps = Long.parseLong(f.metadata().get("adam_steps"));
      }
      opt.restore(adamSteps, m, v);
      int step = state.get("step").asInt();
      LOG.info("resuming training from {} (step {})", latest, step);
      return step;
    } catch (IOException e) {
      throw new IllegalStateException("cannot read checkpoint " + latest + ": " + e.getMessage(),
          e);
    }
  }

  private static org.loratransplant.model.ModelConfig modelConfigOf(LoraAdapter adapter,
      Path where) {
    return adapter.baseConfig();
  }

  /**
   * A hash of the data, the settings, the objective and the adapter's shape: what a checkpoint
   * is valid for. The default objective adds nothing, so checkpoints written before objectives
   * existed still resume.
   */
  private String fingerprint(List<TrainingExample> data, LoraAdapter adapter) {
    try {
      MessageDigest md = MessageDigest.getInstance("SHA-256");
      md.update(config.toString().getBytes(StandardCharsets.UTF_8));
      md.update(adapter.config().toString().getBytes(StandardCharsets.UTF_8));
      if (objective != MaskedCrossEntropy.INSTANCE) {
        md.update(("objective=" + objective.description()).getBytes(StandardCharsets.UTF_8));
      }
      for (TrainingExample ex : data) {
        ByteBuffer b = ByteBuffer.allocate(4 * (ex.prompt().length + 2 * ex.response().length)
            + 8);
        b.putInt(ex.prompt().length).putInt(ex.response().length);
        for (int t : ex.prompt()) {
          b.putInt(t);
        }
        for (int t : ex.response()) {
          b.putInt(t);
        }
        for (float w : ex.weights()) {
          b.putFloat(w);
        }
        md.update(b.array());
      }
      return HexFormat.of().formatHex(md.digest());
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  static String duration(double seconds) {
    long s = Math.round(seconds);
    return s >= 3600 ? String.format("%dh%02dm", s / 3600, s % 3600 / 60)
        : String.format("%dm%02ds", s / 60, s % 60);
  }
}
