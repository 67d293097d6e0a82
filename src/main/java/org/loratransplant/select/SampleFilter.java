package org.loratransplant.select;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * TiTok's sample filter and its variants. Every variant returns its picks in rank order (mean
 * excess descending, ties to the smaller sample id) and all of the pool when M >= the pool;
 * whether a short pool is an error is the caller's decision.
 */
public final class SampleFilter {
  private SampleFilter() {}

  /** Rank order: mean excess descending, ties to the smaller sample id. */
  public static final Comparator<Candidate> RANK = Comparator
      .comparingDouble(Candidate::meanExcess).reversed()
      .thenComparingLong(Candidate::sampleId);

  /**
   * @param reference label counts to mirror (e.g. the task's training split); null or empty =
   *     equal shares; only {@code balanced} reads it
   */
  public static List<Candidate> select(SampleMode mode, List<Candidate> pool, int m,
      Map<String, Long> reference) {
    return switch (mode) {
      case TOP_M -> topM(pool, m);
      case BALANCED -> balanced(pool, m, reference);
      case NONE -> firstM(pool, m);
    };
  }

  /** The M largest mean excesses. */
  public static List<Candidate> topM(List<Candidate> pool, int m) {
    List<Candidate> sorted = checked(pool, m);
    sorted.sort(RANK);
    return new ArrayList<>(sorted.subList(0, Math.min(m, sorted.size())));
  }

  /** Filter off: the M smallest sample ids, returned in rank order. */
  public static List<Candidate> firstM(List<Candidate> pool, int m) {
    List<Candidate> sorted = checked(pool, m);
    sorted.sort(Comparator.comparingLong(Candidate::sampleId));
    List<Candidate> out = new ArrayList<>(sorted.subList(0, Math.min(m, sorted.size())));
    out.sort(RANK);
    return out;
  }

  /**
   * M samples with each answer class given a share of M proportional to its reference count
   * (largest-remainder rounding), filled by mean excess within the class. When a class has
   * fewer candidates than its quota, the unused places are shared again, in proportion, among
   * the classes that still have candidates, until M are picked or the pool is used up. Classes
   * absent from a non-empty reference get places only once every referenced class has run out
   * (then in equal shares): a generated "Fals" should not take a real class's places.
   */
  public static List<Candidate> balanced(List<Candidate> pool, int m,
      Map<String, Long> reference) {
    List<Candidate> sorted = checked(pool, m);
    sorted.sort(RANK);
    if (reference != null) {
      reference.forEach((label, n) -> {
        if (n == null || n < 0) {
          throw new IllegalArgumentException("reference count of class '" + label
              + "' must be >= 0, got " + n);
        }
      });
    }
    Map<String, List<Candidate>> byClass = new TreeMap<>();
    for (Candidate c : sorted) {
      if (c.label() == null) {
        throw new IllegalArgumentException("sample " + c.sampleId() + " has no answer label "
            + "(the class-balanced filter needs one per candidate)");
      }
      byClass.computeIfAbsent(c.label(), k -> new ArrayList<>()).add(c);
    }
    Map<String, Integer> taken = new TreeMap<>();
    byClass.keySet().forEach(k -> taken.put(k, 0));
    int remaining = Math.min(m, sorted.size());
    while (remaining > 0) {
      Map<String, Double> weights = new LinkedHashMap<>();
      for (String label : byClass.keySet()) {
        if (taken.get(label) < byClass.get(label).size()) {
          weights.put(label, weight(reference, label));
        }
      }
      if (weights.values().stream().allMatch(w -> w == 0)) {
        weights.replaceAll((k, w) -> 1.0);
      }
      Map<String, Integer> quota = quotas(weights, remaining);
      for (Map.Entry<String, Integer> q : quota.entrySet()) {
        int left = byClass.get(q.getKey()).size() - taken.get(q.getKey());
        int give = Math.min(q.getValue(), left);
        taken.merge(q.getKey(), give, Integer::sum);
        remaining -= give;
      }
    }
    List<Candidate> out = new ArrayList<>();
    taken.forEach((label, n) -> out.addAll(byClass.get(label).subList(0, n)));
    out.sort(RANK);
    return out;
  }

  /**
   * Splits {@code m} places by weight with the largest-remainder method: each class gets
   * {@code floor(m x w / sum w)}, the places left go one each to the largest fractional parts,
   * ties to the larger weight, then the earlier label in iteration order.
   */
  static Map<String, Integer> quotas(Map<String, Double> weights, int m) {
    double total = weights.values().stream().mapToDouble(Double::doubleValue).sum();
    Map<String, Integer> out = new LinkedHashMap<>();
    List<String> labels = new ArrayList<>(weights.keySet());
    double[] frac = new double[labels.size()];
    int given = 0;
    for (int i = 0; i < labels.size(); i++) {
      double exact = m * weights.get(labels.get(i)) / total;
      // The epsilon keeps 3 x 1/3 x 3 at 3 rather than 2.9999999.
      int base = (int) Math.floor(exact + 1e-9);
      frac[i] = exact - base;
      out.put(labels.get(i), base);
      given += base;
    }
    List<Integer> order = new ArrayList<>();
    for (int i = 0; i < labels.size(); i++) {
      order.add(i);
    }
    order.sort((a, b) -> {
      int c = Double.compare(frac[b], frac[a]);
      return c != 0 ? c : Double.compare(weights.get(labels.get(b)), weights.get(labels.get(a)));
    });
    for (int r = 0; r < m - given; r++) {
      out.merge(labels.get(order.get(r)), 1, Integer::sum);
    }
    return out;
  }

  private static double weight(Map<String, Long> reference, String label) {
    if (reference == null || reference.isEmpty()) {
      return 1.0;
    }
    return reference.getOrDefault(label, 0L);
  }

  private static List<Candidate> checked(List<Candidate> pool, int m) {
    if (m < 1) {
      throw new IllegalArgumentException("M (samples to keep) must be >= 1, got " + m);
    }
    Set<Long> ids = new HashSet<>();
    for (Candidate c : pool) {
      if (!ids.add(c.sampleId())) {
        throw new IllegalArgumentException("sample " + c.sampleId() + " is in the pool twice");
      }
    }
    return new ArrayList<>(pool);
  }
}
