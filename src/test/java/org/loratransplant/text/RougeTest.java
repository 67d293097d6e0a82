package org.loratransplant.text;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import org.junit.jupiter.api.Test;

/** Golden values computed by hand with rouge_score's definitions. */
class RougeTest {

  @Test
  void tokenisesLikeRougeScore() {
    assertEquals(List.of("the", "cat", "s", "mat", "2"), Rouge.tokens("The CAT's  mat-2!"));
    assertEquals(List.of(), Rouge.tokens(" ...  "));
  }

  @Test
  void rouge1AndRougeL() {
    // ref: the cat sat on the mat (6) ; pred: the cat on the mat (5)
    // unigram overlap (clipped): the x2, cat, on, mat = 5 -> P 5/5, R 5/6, F = 10/11
    assertEquals(10.0 / 11, Rouge.rouge1("the cat sat on the mat", "the cat on the mat").f(),
        1e-12);
    // LCS = the cat on the mat = 5: same P/R/F
    assertEquals(10.0 / 11, Rouge.rougeL("the cat sat on the mat", "the cat on the mat").f(),
        1e-12);
    // ref: a b c d ; pred: d c b a -> unigrams 4/4 (F 1), LCS 1 -> P=R=1/4, F=1/4
    assertEquals(1.0, Rouge.rouge1("a b c d", "d c b a").f(), 1e-12);
    assertEquals(0.25, Rouge.rougeL("a b c d", "d c b a").f(), 1e-12);
    assertEquals(0.0, Rouge.rougeL("", "a").f());
    assertEquals(3, Rouge.lcs(List.of("a", "b", "c", "d"), List.of("b", "x", "c", "d")));
  }
}
