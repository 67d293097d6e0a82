package org.loratransplant.train.objective;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import java.util.Set;

/**
 * What one trainer micro-step minimises: a pure function of the student's forward outputs, the
 * batch and the teacher's outputs, returning a scalar. The trainer asks the objective first for
 * its teacher outputs ({@link #teach}, computed without gradients) and for the student layers it
 * reads ({@link #studentLayers}), then runs the student and calls {@link #loss}.
 */
public interface Objective {

  /** The scalar loss of one micro-batch; differentiable in the student outputs. */
  NDArray loss(ModelOutputs student, TokenBatch batch, TeacherOutputs teacher);

  /**
   * What this objective needs from its teacher(s) for {@code batch}, created in {@code scope};
   * called outside any gradient recording. Objectives without a teacher return
   * {@link TeacherOutputs#none()}.
   */
  default TeacherOutputs teach(TokenBatch batch, NDManager scope) {
    return TeacherOutputs.none();
  }

  /** Decoder layers whose outputs {@link #loss} reads from the student (0-based). */
  default Set<Integer> studentLayers() {
    return Set.of();
  }

  /**
   * A stable text naming the objective and everything that changes its value (teachers,
   * temperatures, weights); checkpoints are only resumed under the same description.
   */
  String description();
}
