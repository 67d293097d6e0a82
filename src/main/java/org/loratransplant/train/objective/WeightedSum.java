package org.loratransplant.train.objective;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

/** {@code sum_k weight_k * objective_k}; each term gets its own teacher outputs. */
public final class WeightedSum implements Objective {
  private final List<Term> terms;

  /** One term of the sum. */
  public record Term(double weight, Objective objective) {
    public Term {
      if (!Double.isFinite(weight)) {
        throw new IllegalArgumentException("term weight must be finite, got " + weight);
      }
    }
  }

  WeightedSum(List<Term> terms) {
    if (terms.isEmpty()) {
      throw new IllegalArgumentException("a weighted sum needs at least one term");
    }
    this.terms = List.copyOf(terms);
  }

  public List<Term> terms() {
    return terms;
  }

  @Override
  public TeacherOutputs teach(TokenBatch batch, NDManager scope) {
    List<TeacherOutputs> parts = new ArrayList<>();
    for (Term t : terms) {
      parts.add(t.objective().teach(batch, scope));
    }
    return TeacherOutputs.ofParts(parts);
  }

  @Override
  public Set<Integer> studentLayers() {
    Set<Integer> all = new TreeSet<>();
    terms.forEach(t -> all.addAll(t.objective().studentLayers()));
    return all;
  }

  @Override
  public NDArray loss(ModelOutputs student, TokenBatch batch, TeacherOutputs teacher) {
    NDArray total = null;
    for (int i = 0; i < terms.size(); i++) {
      Term t = terms.get(i);
      NDArray l = t.objective().loss(student, batch, teacher.part(i));
      NDArray scaled = t.weight() == 1 ? l : l.mul((float) t.weight());
      total = total == null ? scaled : total.add(scaled);
    }
    return total;
  }

  @Override
  public String description() {
    StringBuilder sb = new StringBuilder();
    for (Term t : terms) {
      sb.append(sb.length() == 0 ? "" : " + ").append(t.weight()).append(" * ")
          .append(t.objective().description());
    }
    return sb.toString();
  }
}
