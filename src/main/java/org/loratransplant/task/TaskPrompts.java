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
    return supervised(examples, answer, tok, eosId, false);
  }

  /**
   * With {@code promptLoss} the whole rendered example (query and answer) is in the loss, after
   * BOS alone: the adapter then also learns what the task's queries look like, which a source
   * expert needs to write new ones (a tiny model cannot infer that from five seed examples).
   */
  public static List<TrainingExample> supervised(List<TaskExample> examples, PromptTemplate answer,
      TextTokenizer tok, int eosId, boolean promptLoss) {
    List<TrainingExample> out = new ArrayList<>();
    for (TaskExample ex : examples) {
      String rendered = answer.render(Map.of("input", ex.input()));
      if (promptLoss) {
        int[] all = tok.encode(rendered + " " + ex.target().strip() + "\n", true);
        int[] resp = java.util.Arrays.copyOfRange(all, 1, all.length + 1);
        resp[resp.length - 1] = eosId;
        out.add(TrainingExample.full(new int[] {all[0]}, resp));
      } else {
        out.add(TrainingExample.full(tok.encode(rendered, true),
            response(tok, ex.target(), eosId)));
      }
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
