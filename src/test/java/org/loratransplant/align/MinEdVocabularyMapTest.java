package org.loratransplant.align;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.loratransplant.testing.SharedData;

/** MinED on hand-written vocabularies and on stories260K -> babyllama-tok105. */
class MinEdVocabularyMapTest {

  @Test
  void goldenCasesOnAHandWrittenVocabulary() {
    //                        0      1       2      3     4      5     6     7     8
    List<String> student = Arrays.asList("<s>", "ings", "▁the", null, "in", "ng", "t", "e", "he");
    List<String> teacher = List.of("▁the", "ing", "the", "<s>", "x", "hex", "</s>");
    MinEdVocabularyMap m = MinEdVocabularyMap.build(teacher, student);
    assertEquals(2, m.studentToken(0), "exact match wins");
    // 'ing': 'ings' (1), 'in' (1), 'ng' (1): the shorter two tie, the lower id wins.
    assertEquals(4, m.studentToken(1));
    // 'the': '▁the' (1 insertion) and 'he' (1 deletion): the shorter wins.
    assertEquals(8, m.studentToken(2));
    assertEquals(0, m.studentToken(3), "special tokens match exactly");
    // 'x': every single character is 1 away (t, e), as are no shorter pieces: lowest id, 't'.
    assertEquals(6, m.studentToken(4));
    assertEquals(8, m.studentToken(5), "'hex' -> 'he' (1) beats 'e' (2)");
    assertEquals(0, m.studentToken(6), "'</s>' -> '<s>' (1)");
    assertEquals(-1, m.studentToken(99));
    assertEquals(7, m.teacherSize());
    assertEquals(9, m.studentSize());
  }

  @Test
  void levenshteinOnKnownPairs() {
    assertEquals(3, MinEdVocabularyMap.levenshtein(cp("kitten"), cp("sitting"), 99));
    assertEquals(2, MinEdVocabularyMap.levenshtein(cp("flaw"), cp("lawn"), 99));
    assertEquals(4, MinEdVocabularyMap.levenshtein(cp(""), cp("abcd"), 99));
    assertEquals(1, MinEdVocabularyMap.levenshtein(cp("a😀b"), cp("ab"), 99), "code points");
  }

  private static int[] cp(String s) {
    return s.codePoints().toArray();
  }

  @Test
  void storiesPiecesOntoTheCharacterVocabulary() {
    Path teacher = SharedData.model("stories260K").resolve("tokenizer.json");
    Path student = SharedData.model("babyllama-tok105").resolve("tokenizer.json");
    List<String> tp = MinEdVocabularyMap.pieces(teacher);
    List<String> sp = MinEdVocabularyMap.pieces(student);
    assertEquals(512, tp.size());
    assertEquals(105, sp.size());
    MinEdVocabularyMap m = MinEdVocabularyMap.between(teacher, student);
    assertSame(m, MinEdVocabularyMap.between(teacher, student), "built once, cached");
    // '▁the' is 3 edits from each of its characters '▁' (3), 'e' (4), 't' (6), 'h' (8) and 4
    // from anything else: the lowest id, '▁'.
    assertEquals(3, m.studentToken(tp.indexOf("▁the")));
    assertEquals("▁", sp.get(3));
    // 'the' (a word tail): the same tie, lowest id among t, h, e is 'e'.
    if (tp.contains("the")) {
      assertEquals(4, m.studentToken(tp.indexOf("the")));
    }
    // A byte-fallback piece of an ASCII letter is that letter: '<0x41>' -> 'A' (id 40).
    assertEquals("A", tp.get(68));
    assertEquals(40, m.studentToken(68));
    assertEquals(2, m.studentToken(2), "</s> -> </s>");
    // A single-character teacher piece present in both vocabularies maps to itself.
    for (int t = 0; t < tp.size(); t++) {
      int s = sp.indexOf(tp.get(t));
      if (s >= 0) {
        assertEquals(s, m.studentToken(t), "exact match of '" + tp.get(t) + "'");
      }
    }
  }
}
