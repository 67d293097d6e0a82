package org.loratransplant.pipeline.select;

import java.util.ArrayList;
import java.util.List;
import org.loratransplant.pipeline.ExecutorTokenizers;
import org.loratransplant.select.ScoredResponse;

/**
 * The token masks of the select stage and of the target side after alignment: the settings'
 * {@link org.loratransplant.select.SelectionPolicy} applied to one sample or one group, with the
 * vocabulary pieces and eos of the tokenizer of {@code modelDir} (word boundaries and structural
 * tokens come from them). Runs on executors; the tokenizer is cached per JVM.
 */
public final class Masks {
  private Masks() {}

  public static float[] perSample(SelectSettings s, String modelDir, int[] ids, float[] scores,
      long sampleId) {
    return perGroup(s, modelDir, List.of(ids), List.of(scores), new long[] {sampleId}).get(0);
  }

  public static List<float[]> perGroup(SelectSettings s, String modelDir, List<int[]> ids,
      List<float[]> scores, long[] sampleIds) {
    ExecutorTokenizers.Loaded tok = ExecutorTokenizers.get(modelDir);
    List<ScoredResponse> group = new ArrayList<>();
    for (int i = 0; i < ids.size(); i++) {
      group.add(new ScoredResponse(sampleIds[i], scores.get(i),
          tok.tokenizer().vocabularyPieces(ids.get(i)), ids.get(i)));
    }
    return s.policy().maskGroup(group, new int[] {tok.eos()});
  }
}
