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
      System.out.println(continuation(lm, prompt, out));
    }
    return 0;
  }

  /**
   * The text the new tokens add. Decoding them alone would lose the word-initial space that a
   * SentencePiece decoder strips from the start of a text, so decode prompt+new and cut.
   */
  static String continuation(LanguageModel lm, int[] prompt, int[] generated) {
    int[] all = new int[prompt.length + generated.length];
    System.arraycopy(prompt, 0, all, 0, prompt.length);
    System.arraycopy(generated, 0, all, prompt.length, generated.length);
    String full = lm.tokenizer().decode(all);
    String head = lm.tokenizer().decode(prompt);
    return full.startsWith(head) ? full.substring(head.length()) : lm.tokenizer().decode(generated);
  }
}
