package org.loratransplant.lora.adalora;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.training.GradientCollector;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import org.loratransplant.lora.LoraAdapter.Key;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.train.AdamW;
import org.loratransplant.train.LinearSchedule;
import org.loratransplant.train.TrainerConfig;
import org.loratransplant.train.TrainingExample;
import org.loratransplant.train.objective.MaskedCrossEntropy;
import org.loratransplant.train.objective.ModelOutputs;
import org.loratransplant.train.objective.TeacherOutputs;
import org.loratransplant.train.objective.TokenBatch;

/**
 * Trains an {@link AdaLoraAdapter} as PEFT's AdaLoRA loop does: loss = masked cross-entropy +
 * {@code orth_reg_weight} x {@link Orthogonality#regulariser}; after each optimiser step the
 * importance EMAs are updated from {@code |w * grad|} and, on the cubic schedule's masking steps,
 * the lowest-importance triplets are pruned (lambda zeroed); at step {@code total - tfinal} the
 * pattern is fixed and re-applied every later step ({@code AdaLoraModel.update_and_allocate}).
 * One micro-batch per step ({@code grad-accumulation} is not used); the config's
 * {@code totalStep} must equal the number of steps ({@link #steps}).
 */
public final class AdaLoraTrainer {
  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(
      AdaLoraTrainer.class);
  private final TrainerConfig config;

  public AdaLoraTrainer(TrainerConfig config) {
    this.config = config;
  }

  /** Losses per step and the final rank pattern. */
  public record Result(List<Double> losses, Map<Key, boolean[]> rankPattern) {}

  /** Optimiser steps for {@code examples} examples: epochs x ceil(n / batch). */
  public int steps(int examples) {
    return config.epochs() * ((examples + config.batchSize() - 1) / config.batchSize());
  }

  public Result train(LanguageModel lm, AdaLoraAdapter adapter, List<TrainingExample> data) {
    AdaLoraConfig ac = adapter.config();
    int total = steps(data.size());
    if (ac.totalStep() != total) {
      throw new IllegalArgumentException("total_step is " + ac.totalStep() + " but training "
          + "runs " + total + " steps");
    }
    BudgetSchedule schedule = ac.schedule(adapter.modules().size());
    RankAllocator<Key> allocator = new RankAllocator<>(ac.beta1(), ac.beta2());
    List<NDArray> params = adapter.parameters();
    params.forEach(p -> p.setRequiresGradient(true));
    LinearSchedule lr = LinearSchedule.of(config.learningRate(), total, config.warmupRatio());
    Map<Key, boolean[]> pattern = new LinkedHashMap<>();
    adapter.modules().forEach((k, t) -> pattern.put(k, t.kept().clone()));
    List<Double> losses = new ArrayList<>();
    List<NDArray> aTs = new ArrayList<>();
    List<NDArray> bTs = new ArrayList<>();
    adapter.modules().values().forEach(t -> {
      aTs.add(t.aT());
      bTs.add(t.bT());
    });
    try (NDManager opt = lm.model().manager().newSubManager()) {
      AdamW adam = new AdamW(params, config.weightDecay(), opt);
      int step = 0;
      int skipped = 0;
      for (int e = 0; e < config.epochs(); e++) {
        int[] order = shuffle(data.size(), config.seed() * 1_000_003L + e);
        for (int s = 0; s < data.size(); s += config.batchSize()) {
          int[] idx = java.util.Arrays.copyOfRange(order, s, Math.min(data.size(),
              s + config.batchSize()));
          Engine.getInstance().setRandomSeed((int) (config.seed() * 7919 + step));
          try (NDManager scope = lm.model().manager().newSubManager()) {
            TokenBatch b = TokenBatch.of(data, idx, config.normaliser());
            try (GradientCollector gc = Engine.getInstance().newGradientCollector()) {
              ModelOutputs out = ModelOutputs.run(lm.model(), adapter, b, scope, null, true,
                  Set.of());
              NDArray loss = MaskedCrossEntropy.INSTANCE.loss(out, b, TeacherOutputs.none());
              if (ac.orthRegWeight() > 0) {
                loss = loss.add(Orthogonality.regulariser(aTs, bTs)
                    .mul((float) ac.orthRegWeight()));
              }
              gc.backward(loss);
              double v = loss.getFloat();
              if (!Double.isFinite(v)) {
                throw new IllegalStateException("AdaLoRA training diverged at step " + step
                    + " (loss " + v + "; losses so far " + losses + ")");
              }
              losses.add(v);
              if (config.logEvery() > 0 && (step + 1) % config.logEvery() == 0) {
                LOG.info(String.format("adalora step %d/%d loss %.4f kept %d triplets",
                    step + 1, total, v, adapter.modules().values().stream()
                        .mapToInt(AdaLoraAdapter.Triplets::rank).sum()));
              }
            }
          }
          List<NDArray> grads = new ArrayList<>();
          params.forEach(p -> grads.add(p.getGradient()));
          if (clip(grads)) {
            adam.step(params, grads, lr.rate(step));
            allocate(adapter, allocator, schedule, pattern, step, total - ac.tfinal());
            adapter.weightsChanged();
          } else {
            // a non-finite gradient would turn every parameter NaN: skip the update, as a loss
            // scaler does
            skipped++;
            LOG.warn("adalora step {}: non-finite gradient, update skipped ({} so far)",
                step + 1, skipped);
          }
          for (NDArray g : grads) {
            g.subi(g);
            g.close();
          }
          step++;
        }
      }
    }
    params.forEach(p -> p.setRequiresGradient(false));
    return new Result(losses, pattern);
  }

  /** Clips to max-grad-norm; false when a gradient is not finite. */
  private boolean clip(List<NDArray> grads) {
    double sq = 0;
    for (NDArray g : grads) {
      try (NDArray square = g.square(); NDArray s = square.sum()) {
        sq += s.getFloat();
      }
    }
    if (!Double.isFinite(sq)) {
      return false;
    }
    if (config.maxGradNorm() <= 0) {
      return true;
    }
    double coef = config.maxGradNorm() / (Math.sqrt(sq) + 1e-6);
    if (coef < 1) {
      grads.forEach(g -> g.muli((float) coef));
    }
    return true;
  }

  /** PEFT's update_and_allocate for one step. */
  private static void allocate(AdaLoraAdapter adapter, RankAllocator<Key> allocator,
      BudgetSchedule schedule, Map<Key, boolean[]> pattern, int step, int finalStart) {
    if (step > finalStart) {
      apply(adapter, pattern);
      return;
    }
    Map<Key, RankAllocator.Module> mods = modules(adapter);
    if (step < finalStart) {
      allocator.update(mods);
    }
    BudgetSchedule.Budget b = schedule.at(step);
    if (b.mask() || step == finalStart) {
      Map<Key, boolean[]> p = allocator.maskToBudget(mods, b.budget());
      pattern.putAll(p);
      for (Map.Entry<Key, RankAllocator.Module> m : mods.entrySet()) {
        adapter.modules().get(m.getKey()).e().set(m.getValue().e());
      }
      apply(adapter, pattern);
    }
  }

  /** Zeroes lambda of every slot the pattern drops and records the pattern on the adapter. */
  private static void apply(AdaLoraAdapter adapter, Map<Key, boolean[]> pattern) {
    for (Map.Entry<Key, boolean[]> p : pattern.entrySet()) {
      AdaLoraAdapter.Triplets t = adapter.modules().get(p.getKey());
      float[] e = t.e().toFloatArray();
      for (int i = 0; i < e.length; i++) {
        if (!p.getValue()[i]) {
          e[i] = 0f;
        }
        t.kept()[i] = p.getValue()[i];
      }
      t.e().set(e);
    }
    adapter.weightsChanged();
  }

  /** The adapter's values and gradients in PEFT's orientation. */
  private static Map<Key, RankAllocator.Module> modules(AdaLoraAdapter adapter) {
    Map<Key, RankAllocator.Module> out = new LinkedHashMap<>();
    for (Map.Entry<Key, AdaLoraAdapter.Triplets> e : adapter.modules().entrySet()) {
      AdaLoraAdapter.Triplets t = e.getValue();
      int in = (int) t.aT().getShape().get(0);
      int r = (int) t.aT().getShape().get(1);
      int outF = (int) t.bT().getShape().get(1);
      out.put(e.getKey(), new RankAllocator.Module(r, in, outF,
          transpose(t.aT().toFloatArray(), in, r), transpose(t.aT().getGradient().toFloatArray(),
              in, r),
          transpose(t.bT().toFloatArray(), r, outF),
          transpose(t.bT().getGradient().toFloatArray(), r, outF), t.e().toFloatArray(),
          t.e().getGradient().toFloatArray()));
    }
    return out;
  }

  /** Row-major (rows, cols) -> (cols, rows). */
  static float[] transpose(float[] m, int rows, int cols) {
    float[] t = new float[m.length];
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < cols; j++) {
        t[j * rows + i] = m[i * cols + j];
      }
    }
    return t;
  }

  private static int[] shuffle(int n, long seed) {
    int[] order = new int[n];
    for (int i = 0; i < n; i++) {
      order[i] = i;
    }
    SplittableRandom rng = new SplittableRandom(seed);
    for (int i = n - 1; i > 0; i--) {
      int j = rng.nextInt(i + 1);
      int t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
    return order;
  }
}
