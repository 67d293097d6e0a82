package org.loratransplant.cli;

import java.util.List;
import org.loratransplant.model.Devices;
import org.loratransplant.model.GenerationParams;
import org.loratransplant.model.LanguageModel;

/** {@code jobs/lt generate}: prints the continuation of a prompt (or of BOS) and nothing else. */
public final class GenerateCommand implements Command {
  @Override
  public String name() {
    return "generate";
  }

  @Override
  public String summary() {
    return "Generate text from a model (greedy with --temperature 0). Prints the generated text "
        + "only, so it can be compared with other runtimes from the shell.";
  }

  @Override
  public int run(String[] args) {
    Options o = new Options(name(), summary())
        .value("model", "DIR", "Hugging Face model directory", null)
        .value("max-new-tokens", "N", "tokens to generate at most", "256")
        .value("temperature", "T", "sampling temperature; 0 is greedy", "1.0")
        .value("top-p", "P", "nucleus sampling threshold in (0, 1]", "1.0")
        .value("seed", "S", "random seed of the request", "42")
        .value("prompt", "TEXT", "text to continue (default: nothing, just BOS)", "");
    ModelCli.declare(o);
    if (!o.parse(args)) {
      return 0;
    }
    GenerationParams params = new GenerationParams(o.integer("max-new-tokens"),
        o.number("temperature"), o.number("top-p"), new int[0]);
    try (ModelCli.Loaded m = ModelCli.load(o)) {
      LanguageModel lm = m.model();
      int[] prompt = lm.tokenizer().encode(o.get("prompt"), true);
      GenerationParams withEos = new GenerationParams(params.maxNewTokens(), params.temperature(),
          params.topP(), lm.eosIds());
      int[] out = lm.generate(List.of(prompt), new long[] {o.longValue("seed")}, withEos,
          m.adapter(), 1).get(0).tokens();
      System.out.println(lm.tokenizer().continuation(prompt, out));
    }
    return 0;
  }
}
