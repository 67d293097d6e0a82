package org.loratransplant.text;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * ROUGE-1 and ROUGE-L as Google's {@code rouge_score} computes them by default (no stemming):
 * lower-case, every character outside [a-z0-9] becomes a space, split on whitespace.
 */
public final class Rouge {
  private Rouge() {}

  /** Precision, recall and F1 of a prediction against a reference. */
  public record Score(double precision, double recall, double f) {
    static Score of(int overlap, int predLen, int refLen) {
      if (overlap == 0 || predLen == 0 || refLen == 0) {
        return new Score(0, 0, 0);
      }
      double p = (double) overlap / predLen;
      double r = (double) overlap / refLen;
      return new Score(p, r, 2 * p * r / (p + r));
    }
  }

  public static List<String> tokens(String text) {
    String norm = text.toLowerCase(Locale.ROOT).replaceAll("[^a-z0-9]+", " ").strip();
    List<String> out = new ArrayList<>();
    if (norm.isEmpty()) {
      return out;
    }
    for (String t : norm.split(" ")) {
      out.add(t);
    }
    return out;
  }

  public static Score rouge1(String reference, String prediction) {
    List<String> ref = tokens(reference);
    List<String> pred = tokens(prediction);
    Map<String, Integer> counts = new HashMap<>();
    ref.forEach(t -> counts.merge(t, 1, Integer::sum));
    int overlap = 0;
    for (String t : pred) {
      Integer c = counts.get(t);
      if (c != null && c > 0) {
        overlap++;
        counts.put(t, c - 1);
      }
    }
    return Score.of(overlap, pred.size(), ref.size());
  }

  public static Score rougeL(String reference, String prediction) {
    return rougeL(tokens(reference), tokens(prediction));
  }

  public static Score rougeL(List<String> ref, List<String> pred) {
    return Score.of(lcs(ref, pred), pred.size(), ref.size());
  }

  /** Length of the longest common subsequence, in O(min(n, m)) memory. */
  public static int lcs(List<String> a, List<String> b) {
    if (a.size() < b.size()) {
      List<String> t = a;
      a = b;
      b = t;
    }
    int[] prev = new int[b.size() + 1];
    int[] cur = new int[b.size() + 1];
    for (String x : a) {
      for (int j = 1; j <= b.size(); j++) {
        cur[j] = x.equals(b.get(j - 1)) ? prev[j - 1] + 1 : Math.max(prev[j], cur[j - 1]);
      }
      int[] t = prev;
      prev = cur;
      cur = t;
    }
    return prev[b.size()];
  }
}
