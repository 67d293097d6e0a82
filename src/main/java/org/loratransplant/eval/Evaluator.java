package org.loratransplant.eval;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.loratransplant.model.Adapter;
import org.loratransplant.model.GenerationParams;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.task.PromptTemplate;
import org.loratransplant.task.TaskExample;
import org.loratransplant.text.Rouge;

/**
 * Scores a model (optionally with an adapter) on test examples: exact match of the greedy answer,
 * log-likelihood choice accuracy when the answers form a closed set, and ROUGE-1/ROUGE-L F of the
 * answer against the target; each with its example count and 95% interval.
 */
public final class Evaluator {

  /** How to prompt and read answers. */
  public record Settings(PromptTemplate answerPrompt, int maxNewTokens, int batchSize,
      boolean firstLine) implements java.io.Serializable {}

  /** One example's outcome. */
  public record Row(String input, String target, String generated, String answer,
      boolean exact, String choice, double rouge1, double rougeL) {}

  /** The figures of one evaluated system. */
  public record Report(String system, int n, Interval exactMatch, Interval choiceAccuracy,
      Interval rouge1, Interval rougeL, List<Row> rows) {}

  private final Settings settings;

  public Evaluator(Settings settings) {
    this.settings = settings;
  }

  public Report evaluate(String system, LanguageModel lm, Adapter adapter,
      List<TaskExample> test, List<String> answerSet) {
    if (test.isEmpty()) {
      throw new IllegalArgumentException("no test examples");
    }
    List<int[]> prompts = new ArrayList<>();
    for (TaskExample ex : test) {
      prompts.add(lm.tokenizer().encode(settings.answerPrompt().render(
          Map.of("input", ex.input())), true));
    }
    long[] seeds = new long[test.size()];
    List<LanguageModel.Generation> gens = lm.generate(prompts, seeds,
        GenerationParams.greedy(settings.maxNewTokens(), lm.eosIds()), adapter,
        settings.batchSize());
    String[] choices = answerSet.isEmpty() ? null : chooseByLikelihood(lm, adapter, prompts,
        answerSet);
    List<Row> rows = new ArrayList<>();
    int exact = 0;
    int chosen = 0;
    double[] r1 = new double[test.size()];
    double[] rl = new double[test.size()];
    for (int i = 0; i < test.size(); i++) {
      TaskExample ex = test.get(i);
      String text = lm.tokenizer().decode(gens.get(i).tokens());
      String answer = Answers.extract(text, settings.firstLine());
      boolean ok = Answers.matches(answer, ex.target());
      exact += ok ? 1 : 0;
      if (choices != null && choices[i].equals(ex.target().strip())) {
        chosen++;
      }
      r1[i] = Rouge.rouge1(ex.target(), answer).f();
      rl[i] = Rouge.rougeL(ex.target(), answer).f();
      rows.add(new Row(ex.input(), ex.target(), text, answer, ok,
          choices == null ? null : choices[i], r1[i], rl[i]));
    }
    int n = test.size();
    return new Report(system, n, Interval.wilson(exact, n),
        choices == null ? null : Interval.wilson(chosen, n), Interval.mean(r1), Interval.mean(rl),
        rows);
  }

  /** For each prompt, the answer option with the highest total log-probability. */
  private String[] chooseByLikelihood(LanguageModel lm, Adapter adapter, List<int[]> prompts,
      List<String> options) {
    List<int[]> ps = new ArrayList<>();
    List<int[]> rs = new ArrayList<>();
    List<int[]> encoded = new ArrayList<>();
    for (String o : options) {
      encoded.add(lm.tokenizer().encode(o, false));
    }
    for (int[] p : prompts) {
      for (int[] e : encoded) {
        ps.add(p);
        rs.add(e);
      }
    }
    List<float[]> lps = lm.logprobs(ps, rs, adapter, settings.batchSize());
    String[] out = new String[prompts.size()];
    for (int i = 0; i < prompts.size(); i++) {
      double best = Double.NEGATIVE_INFINITY;
      for (int j = 0; j < options.size(); j++) {
        double s = 0;
        for (float x : lps.get(i * options.size() + j)) {
          s += x;
        }
        if (s > best) {
          best = s;
          out[i] = options.get(j).strip();
        }
      }
    }
    return out;
  }
}
