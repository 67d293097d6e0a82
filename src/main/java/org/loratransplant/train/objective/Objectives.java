package org.loratransplant.train.objective;

import java.util.List;

/** Factories for the usual objectives. */
public final class Objectives {
  private Objectives() {}

  /** The trainer's default: masked, weighted cross-entropy on response tokens. */
  public static Objective crossEntropy() {
    return MaskedCrossEntropy.INSTANCE;
  }

  public static WeightedSum.Term term(double weight, Objective objective) {
    return new WeightedSum.Term(weight, objective);
  }

  /** {@code sum_k weight_k * objective_k}. */
  public static WeightedSum sum(WeightedSum.Term... terms) {
    return new WeightedSum(List.of(terms));
  }

  /** The KD baseline: {@code CE + lambda * T^2 KL(P_teacher^T || P_student^T)}. */
  public static WeightedSum distillation(Teacher teacher, double temperature, double lambda) {
    return sum(term(1, crossEntropy()), term(lambda, new TeacherKl(teacher, temperature)));
  }
}
