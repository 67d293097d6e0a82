package org.loratransplant.discriminate;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.loratransplant.model.Adapter;
import org.loratransplant.model.GenerationParams;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.pipeline.generate.GenerateStage;
import org.loratransplant.task.PromptTemplate;
import org.loratransplant.task.TaskExample;
import org.loratransplant.tokenizer.TextTokenizer;

/**
 * The discriminator's negatives: TransLoRA uses the source base model's own generations (no
 * adapter), asked for a query with a few-shot (or zero-shot) prompt and then for its answer, as
 * the TiTok generate stage does. Each row's sampling seeds are {@link GenerateStage#sampleSeed}
 * of (seed, id, 1) for the query and (seed, id, 2) for the answer, so a row does not depend on
 * the batch it ran in; generation stops at the first line.
 */
public final class SyntheticRows {
  private SyntheticRows() {}

  /**
   * @param count rows to generate, with ids {@code firstId, firstId + 1, ...}
   * @param temperature sampling temperature (0 = greedy, which would repeat one row)
   */
  public record Settings(int count, long firstId, int maxQueryTokens, int maxAnswerTokens,
      double temperature, double topP, int batchSize, long seed) {
    public Settings {
      if (count < 1 || maxQueryTokens < 1 || maxAnswerTokens < 1 || batchSize < 1) {
        throw new IllegalArgumentException("count, max query/answer tokens and batch size must "
            + "be >= 1 (got " + count + ", " + maxQueryTokens + ", " + maxAnswerTokens + ", "
            + batchSize + ")");
      }
      new GenerationParams(1, temperature, topP, new int[0]); // checks temperature and top-p
    }
  }

  /**
   * The query-generation prompt: each shot rendered by {@code exampleTemplate} ({@code {input}},
   * {@code {target}}), joined, put into {@code queryTemplate}'s {@code {examples}}. With no shots
   * it is zero-shot.
   */
  public static String queryPrompt(List<TaskExample> shots, String exampleTemplate,
      String queryTemplate) {
    PromptTemplate example = new PromptTemplate("example", exampleTemplate);
    StringBuilder sb = new StringBuilder();
    for (TaskExample e : shots) {
      sb.append(example.render(Map.of("input", e.input().strip(), "target",
          e.target().strip())));
    }
    return new PromptTemplate("query-generation", queryTemplate)
        .render(Map.of("examples", sb.toString()));
  }

  /**
   * Generates rows: a query continuing {@code queryPrompt}, then an answer continuing
   * {@code answerTemplate} rendered with {@code {input}} = that query; both cut at the first
   * line. {@code adapter} null is the base model, TransLoRA's source of negatives.
   */
  public static List<Labelled> generate(LanguageModel lm, Adapter adapter, String queryPrompt,
      PromptTemplate answerTemplate, Settings s) {
    TextTokenizer tok = lm.tokenizer();
    int[] stops = lineStops(lm);
    int[] qp = tok.encode(queryPrompt, true);
    List<int[]> qPrompts = new ArrayList<>();
    long[] qSeeds = new long[s.count()];
    long[] aSeeds = new long[s.count()];
    for (int i = 0; i < s.count(); i++) {
      qPrompts.add(qp);
      qSeeds[i] = GenerateStage.sampleSeed(s.seed(), s.firstId() + i, 1);
      aSeeds[i] = GenerateStage.sampleSeed(s.seed(), s.firstId() + i, 2);
    }
    List<LanguageModel.Generation> queries = lm.generate(qPrompts, qSeeds,
        new GenerationParams(s.maxQueryTokens(), s.temperature(), s.topP(), stops), adapter,
        s.batchSize());
    List<String> queryText = new ArrayList<>();
    List<int[]> aPrompts = new ArrayList<>();
    for (LanguageModel.Generation g : queries) {
      String q = firstLine(tok.continuation(qp, g.tokens()));
      queryText.add(q);
      aPrompts.add(tok.encode(answerTemplate.render(Map.of("input", q)), true));
    }
    List<LanguageModel.Generation> answers = lm.generate(aPrompts, aSeeds,
        new GenerationParams(s.maxAnswerTokens(), s.temperature(), s.topP(), stops), adapter,
        s.batchSize());
    List<Labelled> out = new ArrayList<>(s.count());
    for (int i = 0; i < s.count(); i++) {
      String a = firstLine(tok.continuation(aPrompts.get(i), answers.get(i).tokens()));
      out.add(new Labelled(s.firstId() + i, queryText.get(i), a));
    }
    return out;
  }

  /** Generation stops at the end of a line, as in the generate stage. */
  static int[] lineStops(LanguageModel lm) {
    return GenerateStage.lineStops(lm);
  }

  static String firstLine(String text) {
    return GenerateStage.firstLine(text);
  }

}
