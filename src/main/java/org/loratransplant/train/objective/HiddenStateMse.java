package org.loratransplant.train.objective;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * Hidden-state matching (CA-LoRA's distillation term, layer-wise LoRA migration): for each pair
 * (student layer, teacher layer), the squared difference of the two layer outputs averaged over
 * the hidden dimension, summed over the batch's loss positions with their weights and divided by
 * the batch's normaliser; the pairs' values are averaged. Layer outputs are the residual stream
 * after the layer ({@link org.loratransplant.model.LlamaModel#hiddenStates}). The teacher runs
 * on the student's ids, so it must share the student's tokenizer.
 */
public final class HiddenStateMse implements Objective {
  private final Source teacher;

  /** Where teacher hidden states come from ({@link ModelTeacher} is one). */
  public interface Source {
    /** The outputs {@code (B, T, E)} of teacher layers {@code layers} on the batch's ids. */
    Map<Integer, NDArray> hiddenStates(TokenBatch batch, Set<Integer> layers, NDManager scope);

    /** Names the teacher (for fingerprints). */
    String description();
  }
  private final Map<Integer, Integer> studentToTeacher;

  /** Matches student layer {@code k} to teacher layer {@code studentToTeacher.get(k)}. */
  public HiddenStateMse(Source teacher, Map<Integer, Integer> studentToTeacher) {
    if (studentToTeacher.isEmpty()) {
      throw new IllegalArgumentException("hidden-state MSE needs at least one layer pair");
    }
    this.teacher = teacher;
    Map<Integer, Integer> sorted = new LinkedHashMap<>();
    new TreeSet<>(studentToTeacher.keySet()).forEach(k -> sorted.put(k, studentToTeacher.get(k)));
    this.studentToTeacher = Collections.unmodifiableMap(sorted);
  }

  /** The same layer indices on both sides. */
  public static HiddenStateMse sameLayers(Source teacher, int... layers) {
    Map<Integer, Integer> m = new LinkedHashMap<>();
    for (int l : layers) {
      m.put(l, l);
    }
    return new HiddenStateMse(teacher, m);
  }

  @Override
  public TeacherOutputs teach(TokenBatch batch, NDManager scope) {
    return TeacherOutputs.ofHidden(teacher.hiddenStates(batch,
        new TreeSet<>(studentToTeacher.values()), scope));
  }

  @Override
  public Set<Integer> studentLayers() {
    return studentToTeacher.keySet();
  }

  @Override
  public NDArray loss(ModelOutputs student, TokenBatch b, TeacherOutputs teacherOutputs) {
    NDArray w = student.scope().create(b.weights(), new Shape(b.rows(), b.length()));
    double n = b.denominator(null);
    NDArray total = null;
    for (Map.Entry<Integer, Integer> e : studentToTeacher.entrySet()) {
      NDArray s = student.layer(e.getKey());
      NDArray t = teacherOutputs.hidden(e.getValue());
      if (!s.getShape().equals(t.getShape())) {
        throw new IllegalArgumentException("student layer " + e.getKey() + " output "
            + s.getShape() + " and teacher layer " + e.getValue() + " output " + t.getShape()
            + " differ in shape");
      }
      NDArray perPosition = s.sub(t).square().mean(new int[] {-1}); // (B, T)
      NDArray term = perPosition.mul(w).sum();
      total = total == null ? term : total.add(term);
    }
    return total.div((float) ((n > 0 ? n : 1) * studentToTeacher.size()));
  }

  @Override
  public String description() {
    return "hidden-mse(" + studentToTeacher + ", teacher=" + teacher.description() + ")";
  }
}
