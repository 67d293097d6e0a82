package org.loratransplant.task;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.loratransplant.tokenizer.TextTokenizer;
import org.loratransplant.train.TrainingExample;

/**
 * Turns task examples into token sequences: prompt = BOS + the answer template rendered with the
 * input; response = the target, a newline, then the model's eos token. The newline ends the
 * answer line even for a small model that never learns the eos token it has not seen in
 * pre-training (answers are read from the first line).
 */
public final class TaskPrompts {
  private TaskPrompts() {}

  public static List<TrainingExample> supervised(List<TaskExample> examples, PromptTemplate answer,
      TextTokenizer tok, int eosId) {
    List<TrainingExample> out = new ArrayList<>();
    for (TaskExample ex : examples) {
      int[] prompt = tok.encode(answer.render(Map.of("input", ex.input())), true);
      out.add(TrainingExample.full(prompt, response(tok, ex.target(), eosId)));
    }
    return out;
  }

  /** The target's tokens and a newline (no BOS), then eos. */
  public static int[] response(TextTokenizer tok, String target, int eosId) {
    int[] t = tok.encode(target.strip() + "\n", false);
    int[] r = java.util.Arrays.copyOf(t, t.length + 1);
    r[t.length] = eosId;
    return r;
  }
}
