package org.loratransplant.pipeline.align;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.loratransplant.pipeline.ExecutorTokenizers;
import org.loratransplant.pipeline.select.SelectSettings;
import org.loratransplant.table.Tables;
import org.loratransplant.task.PromptTemplate;
import org.loratransplant.task.TaskPrompts;
import org.loratransplant.testing.SharedData;
import org.loratransplant.testing.SparkTestSession;

/**
 * A selected sample that cannot be carried to the target fails alone: it goes to the failed
 * table with its reason and the others are aligned as usual. A long response in the
 * character-level babyllama-tok105 needs more tokens than the target's 256 positions (the
 * trainer would refuse the whole table); a row whose mask does not match its tokens makes the
 * alignment throw.
 */
class AlignFailuresTest {
  static final String ANSWER = "Q: {input}\nA:";
  static final String SOURCE = SharedData.model("stories260K").toString();

  static Row selected(long id, int rank, String query, String response, int maskShortBy) {
    ExecutorTokenizers.Loaded src = ExecutorTokenizers.get(SOURCE);
    int[] prompt = src.tokenizer().encode(new PromptTemplate("answer", ANSWER)
        .render(Map.of("input", query)), true);
    int[] ids = TaskPrompts.response(src.tokenizer(), response, src.eos());
    Float[] mask = new Float[ids.length - maskShortBy];
    Arrays.fill(mask, 1f);
    return RowFactory.create(id, rank, query, response, Tables.ints(prompt), Tables.ints(ids),
        mask, mask, 0.5);
  }

  static List<String> run(String target, boolean perBatch) {
    SparkSession spark = SparkTestSession.get();
    String longAnswer = "True and not False or ".repeat(50).strip(); // 1099 characters
    Dataset<Row> sel = spark.createDataFrame(List.of(
        selected(1, 1, "not ( True ) and ( True ) is", "False", 0),
        selected(2, 2, "True and False is", longAnswer, 0),
        selected(3, 3, "False or True is", "True", 1)), Tables.SELECTED.schema());
    AlignSettings s = new AlignSettings(SOURCE, SharedData.model(target).toString(), ANSWER,
        new SelectSettings(SOURCE, 3, "excess", "top-k", 70, perBatch, 4, "rank", 42, Map.of()));
    // One pass over the rows (the wide rows hold both outputs), split here as the stage does.
    List<Row> wide = AlignStage.align(sel, s).collectAsList();
    Tables.TRAINING.check(AlignStage.training(AlignStage.align(sel, s)));
    Tables.FAILED.check(AlignStage.failed(AlignStage.align(sel, s)));
    List<String> out = new ArrayList<>();
    wide.stream().sorted(java.util.Comparator.comparing(r -> r.<Long>getAs("sample_id")))
        .forEach(r -> out.add(r.isNullAt(r.fieldIndex("error"))
            ? "trained " + r.<Long>getAs("sample_id")
            : "align " + r.<Long>getAs("sample_id") + " " + r.<String>getAs("error") + " | "
                + r.<String>getAs("query")));
    return out;
  }

  @Test
  void unalignableRowsFailAloneInEveryAlignPath() {
    for (String path : List.of("babyllama-tok105 sample", "babyllama-tok105 batch",
        "llama2xs sample")) {
      String target = path.split(" ")[0];
      List<String> out = run(target, path.endsWith("batch"));
      String where = path + ": " + out;
      // llama2xs shares stories260K's tokenizer: the mask passes through unaligned, so only the
      // length is checked there (256 positions against the source's 512).
      boolean same = target.equals("llama2xs");
      assertEquals(same ? 2 : 1, out.stream().filter(l -> l.startsWith("trained")).count(),
          where);
      assertTrue(out.contains("trained 1"), where);
      String tooLong = out.stream().filter(l -> l.startsWith("align 2 ")).findFirst()
          .orElseThrow(() -> new AssertionError(where));
      assertTrue(tooLong.contains("tokens for the target, more than its 256 positions")
          && tooLong.endsWith("| True and False is"), where);
      if (!same) {
        String corrupt = out.stream().filter(l -> l.startsWith("align 3 ")).findFirst()
            .orElseThrow(() -> new AssertionError(where));
        assertTrue(corrupt.contains("source scores for"), where);
      }
    }
  }
}
