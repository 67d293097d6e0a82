package org.loratransplant.train.objective;

import ai.djl.ndarray.NDArray;
import java.util.List;
import java.util.Map;

/**
 * What the teacher side gave for one batch: a next-token distribution over the student
 * vocabulary, hidden states of chosen teacher layers, or one {@code TeacherOutputs} per term of
 * a {@link WeightedSum}. Accessors fail with a message when an objective reads what its
 * {@link Objective#teach} did not produce.
 */
public final class TeacherOutputs {
  private static final TeacherOutputs NONE = new TeacherOutputs(null, Map.of(), List.of());
  private final Teacher.Distribution distribution;
  private final Map<Integer, NDArray> hidden;
  private final List<TeacherOutputs> parts;

  private TeacherOutputs(Teacher.Distribution distribution, Map<Integer, NDArray> hidden,
      List<TeacherOutputs> parts) {
    this.distribution = distribution;
    this.hidden = hidden;
    this.parts = parts;
  }

  public static TeacherOutputs none() {
    return NONE;
  }

  public static TeacherOutputs of(Teacher.Distribution distribution) {
    return new TeacherOutputs(distribution, Map.of(), List.of());
  }

  /** Teacher layer outputs {@code (B, T, E)} by teacher layer index. */
  public static TeacherOutputs ofHidden(Map<Integer, NDArray> hidden) {
    return new TeacherOutputs(null, Map.copyOf(hidden), List.of());
  }

  public static TeacherOutputs ofParts(List<TeacherOutputs> parts) {
    return new TeacherOutputs(null, Map.of(), List.copyOf(parts));
  }

  public Teacher.Distribution distribution() {
    if (distribution == null) {
      throw new IllegalStateException("no teacher distribution was computed for this batch");
    }
    return distribution;
  }

  public NDArray hidden(int teacherLayer) {
    NDArray h = hidden.get(teacherLayer);
    if (h == null) {
      throw new IllegalStateException("no hidden state of teacher layer " + teacherLayer
          + " was computed (have " + hidden.keySet() + ")");
    }
    return h;
  }

  public TeacherOutputs part(int i) {
    if (i >= parts.size()) {
      return NONE;
    }
    return parts.get(i);
  }
}
