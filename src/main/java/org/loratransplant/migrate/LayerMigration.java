package org.loratransplant.migrate;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.LoraConfig;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.train.LoraTrainer;
import org.loratransplant.train.TrainingExample;
import org.loratransplant.train.objective.EveryPosition;
import org.loratransplant.train.objective.HiddenStateMse;
import org.loratransplant.train.objective.ModelTeacher;
import org.loratransplant.train.objective.Objective;
import org.loratransplant.train.objective.Objectives;
import org.loratransplant.train.objective.TeacherKl;
import org.loratransplant.train.objective.WeightedSum;

/**
 * Layer-wise LoRA migration (METHODS.md section 5): a LoRA on layer L is distilled into a fresh
 * LoRA on layer L-1 (same projections, rank and alpha), the student trained so that layer L's
 * output hidden state matches the teacher's (base + the LoRA at L, frozen), optionally plus KL on
 * the logits and the task loss; the layer-L LoRA is then dropped. A chain L -> L-k repeats this,
 * each step's teacher being the previous step's student.
 */
public final class LayerMigration {
  private LayerMigration() {}

  /** One finished step: the student now holding the adapter, and its training. */
  public record Step(int from, int to, LoraAdapter student, LoraTrainer.Result training,
      double seconds) {}

  /** The layers the adapter visits, {@code from, from-1, ..., to}; validated. */
  public static List<Integer> chain(int from, int to, int numLayers) {
    if (from < 0 || from >= numLayers) {
      throw new IllegalArgumentException("--from " + from + " is not a layer of the model (0.."
          + (numLayers - 1) + ")");
    }
    if (to < 0 || to >= from) {
      throw new IllegalArgumentException("--to " + to + " must be a layer below --from " + from
          + " (0.." + (from - 1) + ")");
    }
    List<Integer> out = new ArrayList<>();
    for (int l = from; l >= to; l--) {
      out.add(l);
    }
    return out;
  }

  /** The one layer {@code adapter} adapts; fails naming its layers otherwise. */
  public static int onlyLayer(LoraAdapter adapter) {
    TreeSet<Integer> layers = new TreeSet<>();
    adapter.pairs().keySet().forEach(k -> layers.add(k.layer()));
    if (layers.size() != 1) {
      throw new IllegalArgumentException("layer migration moves a LoRA on one layer, but the "
          + "adapter adapts layers " + layers + " (train it with "
          + "--set lt.lora.layers-to-transform=[L])");
    }
    return layers.first();
  }

  /** The student's config: the source's projections, rank, alpha and rsLoRA on {@code layer}. */
  public static LoraConfig studentConfig(LoraConfig source, int layer, double dropout) {
    return new LoraConfig(source.r(), source.alpha(), dropout, source.targetModules(),
        List.of(layer), source.useRslora(), source.baseModel());
  }

  /** The step objective: weighted hidden-state MSE at {@code from}, logit KL and task CE. */
  public static Objective objective(LanguageModel lm, LoraAdapter teacher, int from,
      MigrationSettings s) {
    ModelTeacher t = ModelTeacher.of(lm, teacher);
    List<WeightedSum.Term> terms = new ArrayList<>();
    if (s.mseWeight() > 0) {
      terms.add(Objectives.term(s.mseWeight(),
          new EveryPosition(new HiddenStateMse(t, Map.of(from, from)))));
    }
    if (s.klWeight() > 0) {
      terms.add(Objectives.term(s.klWeight(),
          new EveryPosition(new TeacherKl(t, s.klTemperature()))));
    }
    if (s.ceWeight() > 0) {
      terms.add(Objectives.term(s.ceWeight(), Objectives.crossEntropy()));
    }
    return Objectives.sum(terms.toArray(new WeightedSum.Term[0]));
  }

  /**
   * One step: distils {@code teacher} (a LoRA on one layer L, frozen) into a fresh LoRA on L-1,
   * seeded by {@code seed}. The caller owns (and closes) the returned student.
   */
  public static Step step(LanguageModel lm, LoraAdapter teacher, List<TrainingExample> data,
      MigrationSettings s, long seed) {
    int from = onlyLayer(teacher);
    if (from == 0) {
      throw new IllegalArgumentException("the adapter is on layer 0: there is no layer below");
    }
    long t0 = System.nanoTime();
    LoraAdapter student = LoraAdapter.create(studentConfig(teacher.config(), from - 1,
        s.dropout()), lm.config(), lm.model().manager(), seed);
    try {
      LoraTrainer.Result r = distil(lm, teacher, from, student, student.parameters(), data, s);
      return new Step(from, from - 1, student, r, (System.nanoTime() - t0) / 1e9);
    } catch (RuntimeException e) {
      student.close();
      throw e;
    }
  }

  /**
   * Trains {@code trainable} (arrays of {@code student}) so that the student's output of layer
   * {@code from} matches {@code teacher}'s, with the step objective of {@link #objective}.
   */
  static LoraTrainer.Result distil(LanguageModel lm, LoraAdapter teacher, int from,
      LoraAdapter student, List<ai.djl.ndarray.NDArray> trainable, List<TrainingExample> data,
      MigrationSettings s) {
    return new LoraTrainer(s.trainer(), objective(lm, teacher, from, s)).train(lm, student,
        trainable, data);
  }

  /**
   * The top-layer step for an adapter on several layers (the comparison's experts adapt every
   * layer): the LoRA on the top adapted layer L is dropped and its effect distilled into the
   * LoRA on L-1, which starts as {@code expert}'s own; the LoRAs below L-1 are kept frozen as
   * they are. The teacher is {@code expert} whole, the loss the step objective at layer L. The
   * student adapts the layers below L with the expert's rank and alpha; the caller closes it.
   */
  public static Step topLayer(LanguageModel lm, LoraAdapter expert, List<TrainingExample> data,
      MigrationSettings s) {
    TreeSet<Integer> layers = new TreeSet<>();
    expert.pairs().keySet().forEach(k -> layers.add(k.layer()));
    int from = layers.last();
    if (!layers.contains(from - 1)) {
      throw new IllegalArgumentException("the top-layer step moves the LoRA on layer " + from
          + " into layer " + (from - 1) + ", which the adapter does not adapt (layers "
          + layers + "); use jobs/lt migrate-layer on a one-layer adapter");
    }
    long t0 = System.nanoTime();
    List<Integer> below = new ArrayList<>(layers.headSet(from));
    LoraConfig c = expert.config();
    LoraConfig sc = new LoraConfig(c.r(), c.alpha(), s.dropout(), c.targetModules(), below,
        c.useRslora(), c.baseModel());
    Map<LoraAdapter.Key, LoraAdapter.Matrices> values = new java.util.LinkedHashMap<>();
    expert.pairs().forEach((k, p) -> {
      if (k.layer() < from) {
        values.put(k, new LoraAdapter.Matrices(transpose(p.aT()), transpose(p.bT())));
      }
    });
    LoraAdapter student = LoraAdapter.of(sc, lm.config(), lm.model().manager(), values);
    try {
      List<ai.djl.ndarray.NDArray> trainable = new ArrayList<>();
      student.pairs().forEach((k, p) -> {
        if (k.layer() == from - 1) {
          trainable.add(p.aT());
          trainable.add(p.bT());
        }
      });
      LoraTrainer.Result r = distil(lm, expert, from, student, trainable, data, s);
      return new Step(from, from - 1, student, r, (System.nanoTime() - t0) / 1e9);
    } catch (RuntimeException e) {
      student.close();
      throw e;
    }
  }

  /** A 2-D array's values transposed, row-major: {@code (rows, cols)} to {@code (cols, rows)}. */
  private static float[] transpose(ai.djl.ndarray.NDArray x) {
    long[] shape = x.getShape().getShape();
    int rows = (int) shape[0];
    int cols = (int) shape[1];
    float[] a = x.toFloatArray();
    float[] t = new float[a.length];
    for (int r = 0; r < rows; r++) {
      for (int col = 0; col < cols; col++) {
        t[col * rows + r] = a[r * cols + col];
      }
    }
    return t;
  }

  /** Called after each step of {@link #walk}, before the step's teacher is closed. */
  public interface StepListener {
    void done(Step step);
  }

  /**
   * Walks {@code expert} (a LoRA on one layer) down to layer {@code to}, one step per layer; each
   * step's teacher is the previous step's student. Every student but the last is closed after
   * the next step (the listener sees each while open); returns the last, which the caller owns.
   */
  public static LoraAdapter walk(LanguageModel lm, LoraAdapter expert, int to,
      List<TrainingExample> data, MigrationSettings s, long seed, StepListener listener) {
    List<Integer> layers = chain(onlyLayer(expert), to, lm.config().numLayers());
    LoraAdapter teacher = expert;
    for (int i = 1; i < layers.size(); i++) {
      Step step = step(lm, teacher, data, s, seed + i);
      listener.done(step);
      if (teacher != expert) {
        teacher.close();
      }
      teacher = step.student();
    }
    return teacher;
  }
}
