package org.loratransplant.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.List;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.util.CollectionAccumulator;
import org.junit.jupiter.api.Test;
import org.loratransplant.testing.SparkTestSession;

/**
 * Progress lines: once every sample is done the stage is still writing; that is said once, not
 * "240/240 samples (100%)" again every few seconds until the stage ends (issue 13, finding 5).
 */
class ProgressTest {
  @Test
  void allDoneIsSaidOnceWhileTheStageWritesItsOutputs() {
    try (Progress p = new Progress(SparkTestSession.get().sparkContext(), "score", "samples",
        240, false)) {
      p.done().add(120);
      String half = p.line();
      assertTrue(half.contains("120/240 samples (50%)") && half.contains("ETA"), half);
      assertNotNull(p.line(), "before the end every tick prints (rate, ETA)");
      p.done().add(120);
      String all = p.line();
      assertTrue(all.contains("240/240 samples (100%)") && all.contains("writing"), all);
      assertNull(p.line(), "no second 100% line");
      assertNull(p.line());
      // A count that grows past the total (another generation round) prints again, once.
      p.done().add(10);
      assertTrue(p.line().contains("250/240"));
      assertNull(p.line());
    }
  }

  /**
   * Executors name the format their model computed in; a stage whose partitions differ (auto
   * resolved differently across a mixed cluster) records the counts and warns.
   */
  @Test
  void partitionsInDifferentNumberFormatsAreCountedAndWarnedOf() {
    JavaSparkContext sc = JavaSparkContext.fromSparkContext(SparkTestSession.get()
        .sparkContext());
    try (Progress mixed = new Progress(sc.sc(), "score-mixed", "samples", 4, false);
        Progress uniform = new Progress(sc.sc(), "score-uniform", "samples", 4, false)) {
      CollectionAccumulator<String> m = mixed.formats();
      CollectionAccumulator<String> u = uniform.formats();
      // As each executor task adds its model's label: partition 3 on a machine without bf16.
      sc.parallelize(List.of(0, 1, 2, 3), 4).foreach(i -> {
        m.add(i == 3 ? "fp32" : "bf16");
        u.add("bf16");
      });
      ObjectNode st = new ObjectMapper().createObjectNode();
      String warning = mixed.putFormats(st);
      assertEquals(3, st.get("precision").get("bf16").asLong());
      assertEquals(1, st.get("precision").get("fp32").asLong());
      assertNotNull(warning);
      assertTrue(warning.contains("different number formats {bf16=3, fp32=1}")
          && warning.contains("lt.titok.precision"), warning);
      ObjectNode one = new ObjectMapper().createObjectNode();
      assertNull(uniform.putFormats(one));
      assertEquals("{\"bf16\":4}", one.get("precision").toString());
    }
  }
}
