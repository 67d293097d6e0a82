package org.loratransplant.pipeline.generate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.loratransplant.pipeline.Progress;
import org.loratransplant.task.TaskExample;
import org.loratransplant.testing.SharedData;
import org.loratransplant.testing.SparkTestSession;

/**
 * The generate stage with continuous batching (the default) against static batches: the same
 * pool rows, and progress that counts every sample and the same tokens.
 */
class GenerateStageTest {

  @Test
  void continuousBatchingWritesTheSamePoolAsStaticBatches() {
    SparkSession spark = SparkTestSession.get();
    String model = SharedData.model("stories260K").toString();
    // Responses stop at a line end, queries up to 24 tokens: lengths differ row by row.
    PoolSettings s = new PoolSettings(model, null, model, null, 20, 1, false, 0.7, 1.0, 0.9,
        24, 20, 4, 8, 2, 11, "cpu", "Q: {input}\nA:", "Q: {input}\nA: {target}\n\n",
        "{examples}Q:", org.loratransplant.model.Precision.FP32);
    List<TaskExample> seeds = List.of(new TaskExample("Once upon a time", "there was a cat."),
        new TaskExample("The dog ran", "to the park."));
    List<String> continuous;
    long continuousTokens;
    try (Progress p = new Progress(spark.sparkContext(), "generate-test-c", "samples", 20)) {
      continuous = rows(GenerateStage.generate(spark, s, seeds, 0, 20, p, true)
          .collectAsList());
      assertEquals(20, p.done().value(), "every sample counted once");
      continuousTokens = p.tokenCount();
    }
    List<String> statics;
    try (Progress p = new Progress(spark.sparkContext(), "generate-test-s", "samples", 20)) {
      statics = rows(GenerateStage.generate(spark, s, seeds, 0, 20, p, false).collectAsList());
      assertEquals(20, p.done().value());
      assertEquals(p.tokenCount(), continuousTokens, "the same tokens counted");
    }
    assertEquals(statics, continuous);
    Set<Integer> lengths = new HashSet<>();
    for (String r : continuous) {
      lengths.add(r.length());
    }
    assertTrue(lengths.size() > 3, "rows of different lengths: " + continuous);
    assertTrue(continuousTokens > 20, "tokens are counted: " + continuousTokens);
  }

  private static List<String> rows(List<Row> rows) {
    return rows.stream().map(Row::toString).sorted().collect(Collectors.toList());
  }
}
