package org.loratransplant.train;

/**
 * Linear warm-up then linear decay to zero, as transformers' get_linear_schedule_with_warmup:
 * the multiplier at optimizer step s (from 0) is {@code s / warmup} during warm-up, then
 * {@code (total - s) / (total - warmup)}. Like HF, the first step runs at rate 0 when there is a
 * warm-up.
 */
public record LinearSchedule(double peak, int totalSteps, int warmupSteps) {

  public static LinearSchedule of(double peak, int totalSteps, double warmupRatio) {
    return new LinearSchedule(peak, totalSteps, (int) Math.ceil(totalSteps * warmupRatio));
  }

  public double rate(int step) {
    if (step < warmupSteps) {
      return peak * step / Math.max(1, warmupSteps);
    }
    return peak * Math.max(0.0, (double) (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
  }
}
