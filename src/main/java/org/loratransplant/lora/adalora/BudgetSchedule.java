package org.loratransplant.lora.adalora;

/**
 * AdaLoRA's cubic budget schedule (PEFT's {@code RankAllocator.budget_schedule}): the total number
 * of kept triplets is {@code initBudget} for steps {@code <= tinit}, {@code targetBudget} after
 * {@code totalStep - tfinal}, and in between
 * {@code floor((initBudget - targetBudget) * (1 - (step - tinit) / (totalStep - tfinal - tinit))^3
 * + targetBudget)}, pruning every {@code deltaT} steps (and at every final step).
 */
public record BudgetSchedule(int initBudget, int targetBudget, int tinit, int tfinal,
    int totalStep, int deltaT) {

  public BudgetSchedule {
    if (totalStep <= 0) {
      throw new IllegalArgumentException("total_step must be positive, got " + totalStep);
    }
    if (tinit >= totalStep - tfinal) {
      throw new IllegalArgumentException("tinit=" + tinit + " and tfinal=" + tfinal
          + " leave no budgeting phase in total_step=" + totalStep);
    }
    if (targetBudget > initBudget) {
      throw new IllegalArgumentException("target budget " + targetBudget + " exceeds the initial "
          + initBudget);
    }
  }

  /** The budget at a step and whether triplets are masked to it at that step. */
  public record Budget(int budget, boolean mask) {}

  public Budget at(int step) {
    if (step <= tinit) {
      return new Budget(initBudget, false);
    }
    if (step > totalStep - tfinal) {
      return new Budget(targetBudget, true);
    }
    double mul = 1 - (double) (step - tinit) / (totalStep - tfinal - tinit);
    int budget = (int) ((initBudget - targetBudget) * (mul * mul * mul) + targetBudget);
    return new Budget(budget, step % deltaT == 0);
  }
}
