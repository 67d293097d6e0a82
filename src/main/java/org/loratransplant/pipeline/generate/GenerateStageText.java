package org.loratransplant.pipeline.generate;

import org.loratransplant.tokenizer.TextTokenizer;

/** Text helpers shared by the generation paths. */
public final class GenerateStageText {
  private GenerateStageText() {}

  /**
   * The text that {@code generated} adds after {@code prompt}: decoding prompt+new and cutting the
   * prompt keeps the word-initial space a SentencePiece decoder would strip from new tokens alone.
   */
  public static String continuation(TextTokenizer tok, int[] prompt, int[] generated) {
    int[] all = new int[prompt.length + generated.length];
    System.arraycopy(prompt, 0, all, 0, prompt.length);
    System.arraycopy(generated, 0, all, prompt.length, generated.length);
    String full = tok.decode(all);
    String head = tok.decode(prompt);
    return full.startsWith(head) ? full.substring(head.length()) : tok.decode(generated);
  }
}
