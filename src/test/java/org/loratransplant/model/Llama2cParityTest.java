package org.loratransplant.model;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.loratransplant.testing.Models;
import org.loratransplant.testing.SharedData;

/**
 * Greedy text from BOS equals karpathy's llama2.c run.c output. run.c's "N steps" forward
 * positions 0..N-1 starting from BOS and print the token each one picks, so N steps are N new
 * tokens (the fixtures confirm it: 199 tokens stop one word short of the 200-step text, and HF's
 * reference generated 200 for it); run.c stops early when the model emits BOS, which the models'
 * generation_config.json lists as an eos id.
 */
class Llama2cParityTest {

  @ParameterizedTest
  @CsvSource({
    "stories260K, stories260K_greedy_t0_n200.expected.txt, 200",
    "stories260K, stories260K_t0_n256.txt, 256",
    "llama2xs, llama2xs_t0_n256.txt, 256",
    "babyllama-tok105, babyllama_tok105_t0_n256.txt, 256"
  })
  void greedyTextMatchesRunC(String model, String fixture, int steps) {
    LanguageModel lm = Models.shared(SharedData.model(model));
    int[] bos = lm.tokenizer().encode("", true);
    assertEquals(1, bos.length, "the prompt is BOS alone");
    LanguageModel.Generation g = lm.generate(List.of(bos), new long[] {0},
        GenerationParams.greedy(steps, lm.eosIds()), null, 1).get(0);
    String expected = SharedData.text(SharedData.llama2c(fixture));
    // run.c ends its output with one newline of its own when it has run all its steps.
    String text = lm.tokenizer().decode(g.tokens());
    assertEquals(strip(expected), strip(text), model + " vs " + fixture);
  }

  private static String strip(String s) {
    return s.endsWith("\n") ? s.substring(0, s.length() - 1) : s;
  }
}
