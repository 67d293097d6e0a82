package org.loratransplant.pipeline.select;

import java.util.ArrayList;
import java.util.List;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.loratransplant.select.Candidate;
import org.loratransplant.select.SampleFilter;

/**
 * Class-balanced top-M for closed answer sets: the pool's (id, mean excess, answer) reach the
 * driver (three small columns per sample) and {@link SampleFilter#balanced} shares M out over the
 * answer classes in the training split's proportions, each class filled by mean excess.
 */
final class BalancedSamples {
  private BalancedSamples() {}

  static List<Long> choose(Dataset<Row> scoredSamples, SelectSettings s) {
    List<Candidate> pool = new ArrayList<>();
    for (Row r : scoredSamples.select("sample_id", "mean_excess", "response").collectAsList()) {
      pool.add(new Candidate(r.getLong(0), r.getDouble(1), r.getString(2).strip()));
    }
    return SampleFilter.balanced(pool, s.samples(), s.classCounts()).stream()
        .map(Candidate::sampleId).toList();
  }
}
