package org.loratransplant.select;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

class StructureTest {
  private static final int[] EOS = {2};

  @Test
  void theFalseAnswerHasItsNewlineAndEosAsStructure() {
    // Real tok512 (stories260K) pieces and ids of "False\n" + EOS.
    String[] pieces = {"▁", "F", "a", "l", "se", "<0x0A>", "</s>"};
    int[] ids = {410, 453, 412, 421, 372, 13, 2};
    assertArrayEquals(new boolean[] {false, false, false, false, false, true, true},
        Structure.find(pieces, ids, EOS));
    // The decoded newline is recognised as well as the byte-fallback piece.
    pieces[5] = "\n";
    assertArrayEquals(new boolean[] {false, false, false, false, false, true, true},
        Structure.find(pieces, ids, EOS));
  }

  @Test
  void onlyTheTrailingNewlinesAreStructuralAndSpecialIdsAnywhere() {
    // template special 7 at the start, a newline inside the answer, two newlines around the EOS.
    String[] pieces = {"<t>", "▁a", "\n", "▁b", "\n", "</s>", "\r\n"};
    int[] ids = {7, 100, 13, 101, 13, 2, 14};
    assertArrayEquals(new boolean[] {true, false, false, false, true, true, true},
        Structure.find(pieces, ids, new int[] {2, 7}));
    // Without the template id the first piece is content; a whitespace piece without a line
    // break ends the trailing run.
    assertArrayEquals(new boolean[] {false, false, false, false, false, true},
        Structure.find(new String[] {"<t>", "▁a", "\n", "▁", "▁", "</s>"},
            new int[] {7, 100, 13, 410, 410, 2}, EOS));
  }

  @Test
  void wordsStartAtWordMarksSpacesNewlinesAndAfterStructure() {
    String[] pieces = {"▁The", "▁cat", "s", "<0x0A>", "Next", " line", "x", "<s>", "tail",
        "\n", "</s>"};
    boolean[] st = {false, false, false, false, false, false, false, true, false, true, true};
    // "▁The" | "▁cat" "s" "\n" (the newline joins the word before it) | "Next" (after a
    // newline) | " line" "x" | structure | "tail" (after structure) | structure.
    assertArrayEquals(new int[] {0, 1, 1, 1, 2, 3, 3, -1, 4, -1, -1},
        Structure.words(pieces, st));
  }

  @Test
  void aResponseStartingWithATailPieceStillStartsAWord() {
    assertArrayEquals(new int[] {0, 0, 1},
        Structure.words(new String[] {"F", "a", "▁x"}, new boolean[3]));
    assertArrayEquals(new int[] {-1, -1}, Structure.words(new String[] {"\n", "</s>"},
        new boolean[] {true, true}));
  }

  @Test
  void mismatchedLengthsAreReported() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> Structure.find(new String[] {"a"}, new int[] {1, 2}, EOS));
    assertEquals("pieces (1) and ids (2) differ in length", e.getMessage());
  }
}
