package org.loratransplant.train.objective;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;

/**
 * Token-level distillation: {@code T^2 * KL(P_teacher^T || P_student^T)} per position, where
 * {@code P^T = softmax(log P / T)} (for logits z the usual {@code softmax(z / T)}); the T^2 keeps
 * the gradient's scale independent of T (Hinton et al.). Summed over the batch's loss positions
 * with their weights, counting only positions the teacher covers, and divided by the same kind
 * of normaliser as the cross-entropy restricted to those positions; no covered weighted position
 * gives 0.
 */
public final class TeacherKl implements Objective {
  private final Teacher teacher;
  private final double temperature;

  public TeacherKl(Teacher teacher, double temperature) {
    if (!(temperature > 0) || Double.isInfinite(temperature)) {
      throw new IllegalArgumentException("temperature must be positive and finite, got "
          + temperature);
    }
    this.teacher = teacher;
    this.temperature = temperature;
  }

  @Override
  public TeacherOutputs teach(TokenBatch batch, NDManager scope) {
    return TeacherOutputs.of(teacher.distribution(batch, scope));
  }

  @Override
  public NDArray loss(ModelOutputs student, TokenBatch b, TeacherOutputs teacherOutputs) {
    Teacher.Distribution d = teacherOutputs.distribution();
    long v = student.logits().getShape().get(2);
    if (!d.logprobs().getShape().equals(student.logits().getShape())) {
      throw new IllegalArgumentException("teacher log-probs " + d.logprobs().getShape()
          + " do not match the student logits " + student.logits().getShape()
          + " (vocabulary " + v + ")");
    }
    NDArray perToken = perTokenKl(d.logprobs(), student.logits(), temperature); // (B, T)
    float[] w = b.weightsWhere(d.valid());
    double n = b.denominator(d.valid());
    NDArray sum = perToken.mul(student.scope().create(w, new Shape(b.rows(), b.length()))).sum();
    return sum.div((float) (n > 0 ? n : 1));
  }

  /**
   * {@code T^2 * sum_v p_t(v) (log p_t(v) - log p_s(v))} over the last axis, with
   * {@code log p_t = logSoftmax(teacherLogprobs / T)} and {@code log p_s = logSoftmax(studentLogits
   * / T)}; the teacher side carries no gradient.
   */
  public static NDArray perTokenKl(NDArray teacherLogprobs, NDArray studentLogits,
      double temperature) {
    float inv = (float) (1 / temperature);
    NDArray lt = (temperature == 1 ? teacherLogprobs : teacherLogprobs.mul(inv)).logSoftmax(-1);
    NDArray ls = (temperature == 1 ? studentLogits : studentLogits.mul(inv)).logSoftmax(-1);
    NDArray kl = lt.exp().mul(lt.sub(ls)).sum(new int[] {-1});
    return temperature == 1 ? kl : kl.mul((float) (temperature * temperature));
  }

  public Teacher teacher() {
    return teacher;
  }

  @Override
  public String description() {
    return "kl(T=" + temperature + ", teacher=" + teacher.description() + ")";
  }
}
