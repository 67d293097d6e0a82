package org.loratransplant.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.Arrays;
import java.util.List;
import org.loratransplant.model.LanguageModel;

/** {@code jobs/lt logprobs}: teacher-forced per-token log-probs of a text or id list, as JSON. */
public final class LogprobsCommand implements Command {
  @Override
  public String name() {
    return "logprobs";
  }

  @Override
  public String summary() {
    return "Print teacher-forced log P(token_i | tokens_<i) for every token after the first K as "
        + "JSON: ids, per-token log-probs (null for the prompt tokens) and their sum. --ids works "
        + "on model directories without a tokenizer.";
  }

  @Override
  public int run(String[] args) throws Exception {
    Options o = new Options(name(), summary())
        .value("model", "DIR", "Hugging Face model directory", null)
        .value("text", "TEXT", "text to score (BOS is prepended as the model expects)", null)
        .value("ids", "1,2,3", "token ids to score, as given", null)
        .value("prompt-tokens", "K", "the first K tokens are context and get no log-prob", "1");
    ModelCli.declare(o);
    if (!o.parse(args)) {
      return 0;
    }
    if (o.has("text") == o.has("ids")) {
      throw new UsageException("give exactly one of --text and --ids");
    }
    int k = o.integer("prompt-tokens");
    try (ModelCli.Loaded m = ModelCli.load(o)) {
      LanguageModel lm = m.model();
      int[] ids = o.has("ids") ? o.integers("ids") : lm.tokenizer().encode(o.get("text"), true);
      if (k < 1 || k >= ids.length) {
        throw new UsageException("--prompt-tokens must be in [1, " + (ids.length - 1) + "] for "
            + ids.length + " tokens (the first token has no context), got " + k);
      }
      float[] lp = lm.logprobs(List.of(Arrays.copyOf(ids, k)),
          List.of(Arrays.copyOfRange(ids, k, ids.length)), m.adapter(), 1).get(0);
      ObjectMapper json = new ObjectMapper();
      ObjectNode out = json.createObjectNode();
      out.put("model", o.get("model"));
      out.put("adapter", m.adapter() == null ? null : String.valueOf(m.adapter()));
      out.put("prompt_tokens", k);
      ArrayNode idArr = out.putArray("ids");
      ArrayNode lpArr = out.putArray("logprobs");
      ArrayNode text = lm.hasTokenizer() ? out.putArray("tokens") : null;
      String[] pieces = lm.hasTokenizer() ? lm.tokenizer().pieces(ids) : null;
      double sum = 0;
      for (int i = 0; i < ids.length; i++) {
        idArr.add(ids[i]);
        if (i < k) {
          lpArr.addNull();
        } else {
          lpArr.add(lp[i - k]);
          sum += lp[i - k];
        }
        if (text != null) {
          text.add(pieces[i]);
        }
      }
      out.put("sum", sum);
      System.out.println(json.writerWithDefaultPrettyPrinter().writeValueAsString(out));
    }
    return 0;
  }
}
