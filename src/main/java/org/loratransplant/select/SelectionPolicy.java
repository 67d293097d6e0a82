package org.loratransplant.select;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * Token selection as one setting a stage calls per sample or per group: plain arrays in, 1/0
 * loss masks out.
 *
 * <p>Every mode works on <em>units</em>: single tokens ({@code top-k}, {@code random}) or words
 * ({@code word}, score = mean excess of the word's pieces). Structural tokens (see
 * {@link Structure#find}) are set by {@code structural}: {@code keep} = 1, {@code drop} = 0, both
 * with k% taken over content units only; {@code rank} makes each structural token a unit of its
 * own that competes with the content (the paper). Counts: {@code top-k} and {@code random} keep
 * {@code floor(k% x units)}; {@code word} keeps {@code max(1, floor(k% x words))} so a one-word
 * answer keeps its word. Ranking is by score descending, ties to the earlier sample, then the
 * earlier position, so {@code paper(k)} reproduces {@link TokenSelection} exactly. {@code random}
 * shuffles the units with a generator seeded from (seed, the sample ids) instead of ranking.
 *
 * @param atLeastOneContent when a sample ends up with no content token kept (e.g. floor(0.7 x 1)
 *     = 0, or structural tokens won every place), also keep its first content unit in the
 *     ranking (the best one; for {@code random} a random one). Adds one unit; takes none away.
 */
public record SelectionPolicy(TokenMode mode, double kPercent, SelectionScope scope,
    StructuralPolicy structural, long seed, boolean atLeastOneContent) implements Serializable {

  public static final String K_KEY = "lt.select.k-percent";

  public SelectionPolicy {
    if (mode == null) {
      throw new IllegalArgumentException(TokenMode.KEY + " is missing");
    }
    if (scope == null) {
      throw new IllegalArgumentException(SelectionScope.KEY + " is missing");
    }
    if (structural == null) {
      throw new IllegalArgumentException(StructuralPolicy.KEY + " is missing");
    }
    if (!(kPercent > 0 && kPercent <= 100)) {
      throw new IllegalArgumentException(K_KEY + " must be in (0, 100]; got " + kPercent);
    }
  }

  /** From config strings; each bad value is reported with its key and the allowed values. */
  public static SelectionPolicy of(String mode, double kPercent, String scope, String structural,
      long seed, boolean atLeastOneContent) {
    return new SelectionPolicy(TokenMode.parse(mode), kPercent, SelectionScope.parse(scope),
        StructuralPolicy.parse(structural), seed, atLeastOneContent);
  }

  /** The paper's selection: top-k% of all tokens per sample, structural tokens included. */
  public static SelectionPolicy paper(double kPercent) {
    return new SelectionPolicy(TokenMode.TOP_K, kPercent, SelectionScope.SAMPLE,
        StructuralPolicy.RANK, 0L, false);
  }

  /** One response's mask (a group of one: the scope makes no difference). */
  public float[] mask(float[] excess, String[] pieces, int[] ids, int[] specialIds,
      long sampleId) {
    return select(List.of(new ScoredResponse(sampleId, excess, pieces, ids)), specialIds).get(0);
  }

  /**
   * One mask per response: with scope {@code sample} each response on its own, with
   * {@code group} the k% over the group's units flattened in the given order.
   *
   * @param specialIds ids that are structural wherever they appear: the EOS ids and any
   *     template special tokens (null = none)
   */
  public List<float[]> maskGroup(List<ScoredResponse> group, int[] specialIds) {
    if (scope == SelectionScope.GROUP) {
      return select(group, specialIds);
    }
    List<float[]> out = new ArrayList<>();
    for (ScoredResponse r : group) {
      out.add(select(List.of(r), specialIds).get(0));
    }
    return out;
  }

  /** A unit of selection: positions of one sample kept or dropped together. */
  private record Unit(int sample, int[] positions, double score, boolean content) {}

  private List<float[]> select(List<ScoredResponse> group, int[] specialIds) {
    int[] specials = specialIds == null ? new int[0] : specialIds;
    List<float[]> masks = new ArrayList<>();
    List<Unit> units = new ArrayList<>();
    for (int s = 0; s < group.size(); s++) {
      ScoredResponse r = group.get(s);
      boolean[] st = Structure.find(r.pieces(), r.ids(), specials);
      float[] m = new float[r.ids().length];
      masks.add(m);
      for (int i = 0; i < m.length; i++) {
        if (st[i] && structural != StructuralPolicy.RANK) {
          m[i] = structural == StructuralPolicy.KEEP ? 1f : 0f;
        } else if (mode == TokenMode.ALL) {
          m[i] = 1f;
        }
      }
      if (mode != TokenMode.ALL) {
        addUnits(units, s, r, st);
      }
    }
    if (mode == TokenMode.ALL) {
      return masks;
    }
    int keep = TokenSelection.keepCount(units.size(), kPercent);
    if (mode == TokenMode.WORD && !units.isEmpty()) {
      keep = Math.max(1, keep);
    }
    if (mode == TokenMode.RANDOM) {
      shuffle(units, new SplitMix(seedFor(group)));
    } else {
      // Stable: units were added in (sample, position) order, which breaks ties.
      units.sort((a, b) -> Double.compare(b.score(), a.score()));
    }
    boolean[] hasContent = new boolean[group.size()];
    for (int u = 0; u < keep; u++) {
      Unit unit = units.get(u);
      set(masks.get(unit.sample()), unit);
      hasContent[unit.sample()] |= unit.content();
    }
    if (atLeastOneContent) {
      for (int u = keep; u < units.size(); u++) {
        Unit unit = units.get(u);
        if (unit.content() && !hasContent[unit.sample()]) {
          set(masks.get(unit.sample()), unit);
          hasContent[unit.sample()] = true;
        }
      }
    }
    return masks;
  }

  /** Sample {@code s}'s units in position order (by first position). */
  private void addUnits(List<Unit> units, int s, ScoredResponse r, boolean[] st) {
    int[] words = mode == TokenMode.WORD ? Structure.words(r.pieces(), st) : null;
    float[] ex = r.excess();
    int i = 0;
    while (i < ex.length) {
      if (st[i]) {
        if (structural == StructuralPolicy.RANK) {
          units.add(new Unit(s, new int[] {i}, ex[i], false));
        }
        i++;
      } else if (words == null) {
        units.add(new Unit(s, new int[] {i}, ex[i], true));
        i++;
      } else {
        // A word's pieces are consecutive: words() numbers them in order.
        int end = i;
        double sum = 0;
        while (end < ex.length && !st[end] && words[end] == words[i]) {
          sum += ex[end];
          end++;
        }
        int[] pos = new int[end - i];
        for (int p = 0; p < pos.length; p++) {
          pos[p] = i + p;
        }
        units.add(new Unit(s, pos, sum / pos.length, true));
        i = end;
      }
    }
  }

  private static void set(float[] mask, Unit unit) {
    for (int p : unit.positions()) {
      mask[p] = 1f;
    }
  }

  private long seedFor(List<ScoredResponse> group) {
    long h = SplitMix.mix(seed);
    for (ScoredResponse r : group) {
      h = SplitMix.mix(h ^ SplitMix.mix(r.sampleId() + SplitMix.GOLDEN));
    }
    return h;
  }

  /** Fisher-Yates with our own generator, so the draw never depends on the JDK's. */
  private static <T> void shuffle(List<T> list, SplitMix rng) {
    for (int i = list.size() - 1; i > 0; i--) {
      Collections.swap(list, i, rng.nextInt(i + 1));
    }
  }

  /** SplitMix64 (Steele, Lea, Flood 2014): tiny, fully specified, good enough for shuffles. */
  static final class SplitMix {
    static final long GOLDEN = 0x9E3779B97F4A7C15L;
    private long state;

    SplitMix(long seed) {
      state = seed;
    }

    static long mix(long z) {
      z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
      z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
      return z ^ (z >>> 31);
    }

    long next() {
      state += GOLDEN;
      return mix(state);
    }

    /** Uniform in [0, bound) by rejection (no modulo bias). */
    int nextInt(int bound) {
      while (true) {
        long r = next() >>> 1;
        long v = r % bound;
        if (r - v + (bound - 1) >= 0) {
          return (int) v;
        }
      }
    }
  }
}
