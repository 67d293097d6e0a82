package org.loratransplant.select;

/**
 * Finds a response's structural tokens and its words from vocabulary piece texts.
 *
 * <p>Pieces must be the vocabulary strings (SentencePiece's {@code ▁} word marks, byte-fallback
 * {@code <0x0A>}), e.g. {@code ["▁", "F", "a", "l", "se", "<0x0A>", "</s>"]} for "False\n" + EOS.
 * Decoding each id on its own does not do: a SentencePiece decoder strips the leading space, so
 * "▁F" comes back as "F" and the word boundary is lost.
 */
public final class Structure {
  private Structure() {}

  /** The SentencePiece word-start mark. */
  static final char WORD_MARK = '\u2581';

  /**
   * Structural positions: every id in {@code specialIds} (the EOS ids, plus any template special
   * tokens the caller knows of), and the run of newline-only pieces at the end of the response
   * (the answer format's line break, before or between the trailing specials). A newline inside
   * the response is content: multi-line answers need it.
   */
  public static boolean[] find(String[] pieces, int[] ids, int[] specialIds) {
    if (pieces.length != ids.length) {
      throw new IllegalArgumentException("pieces (" + pieces.length + ") and ids ("
          + ids.length + ") differ in length");
    }
    boolean[] out = new boolean[ids.length];
    for (int i = 0; i < ids.length; i++) {
      out[i] = contains(specialIds, ids[i]);
    }
    for (int i = ids.length - 1; i >= 0; i--) {
      if (out[i]) {
        continue;
      }
      if (!isNewline(pieces[i])) {
        break;
      }
      out[i] = true;
    }
    return out;
  }

  /**
   * The word of each position, numbered 0, 1, ... in order; -1 for structural positions, which
   * are not words. A content piece starts a new word when it begins with {@code ▁} or a space,
   * when it follows a piece that ends in a newline, when it follows a structural token, or when
   * it is the first content piece. Any other piece (a word tail, a newline-only piece) joins the
   * word before it.
   */
  public static int[] words(String[] pieces, boolean[] structural) {
    if (pieces.length != structural.length) {
      throw new IllegalArgumentException("pieces (" + pieces.length + ") and structural flags ("
          + structural.length + ") differ in length");
    }
    int[] out = new int[pieces.length];
    int word = -1;
    boolean startsNew = true;
    for (int i = 0; i < pieces.length; i++) {
      if (structural[i]) {
        out[i] = -1;
        startsNew = true;
        continue;
      }
      String t = text(pieces[i]);
      if (startsNew || (!t.isEmpty() && (t.charAt(0) == WORD_MARK || t.charAt(0) == ' '))) {
        word++;
      }
      out[i] = word;
      startsNew = t.endsWith("\n") || t.endsWith("\r");
    }
    return out;
  }

  /** Whether a piece is only whitespace (word marks included) with at least one line break. */
  static boolean isNewline(String piece) {
    String t = text(piece);
    boolean breaks = false;
    for (int i = 0; i < t.length(); i++) {
      char c = t.charAt(i);
      if (c == '\n' || c == '\r') {
        breaks = true;
      } else if (!Character.isWhitespace(c) && c != WORD_MARK) {
        return false;
      }
    }
    return breaks;
  }

  /** The piece with byte-fallback line breaks written as the characters they stand for. */
  private static String text(String piece) {
    if (piece == null) {
      throw new IllegalArgumentException("a piece text is null");
    }
    return piece.replace("<0x0A>", "\n").replace("<0x0D>", "\r");
  }

  private static boolean contains(int[] ids, int id) {
    for (int x : ids) {
      if (x == id) {
        return true;
      }
    }
    return false;
  }
}
