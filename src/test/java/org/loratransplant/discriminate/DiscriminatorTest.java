package org.loratransplant.discriminate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.task.PromptTemplate;
import org.loratransplant.task.Split;
import org.loratransplant.task.TaskFiles;
import org.loratransplant.testing.Models;
import org.loratransplant.testing.SharedData;

/**
 * The discriminator on stories260K and BIG-Bench-Hard boolean_expressions: real rows are the
 * task's training split, negatives are the base model's own generations (TransLoRA's choice),
 * which for this TinyStories model are story fragments.
 */
class DiscriminatorTest {
  private static final String ANSWER = "Q: {input}\nA:";
  private static final int TRAIN_SYNTHETIC = 60;
  private static final int HELD_OUT = 50; // per class
  private static LanguageModel lm;
  private static Split split;
  private static List<Labelled> synthetic;
  private static Discriminator trained;

  @BeforeAll
  static void fit() {
    lm = Models.shared(SharedData.model("stories260K"));
    split = Split.of(TaskFiles.load(
        SharedData.root().resolve("data/bbh/bbh/boolean_expressions.json")), 0.4, 42);
    String queryPrompt = SyntheticRows.queryPrompt(split.seedExamples(3),
        "Q: {input}\nA: {target}\n\n", "{examples}Q:");
    synthetic = SyntheticRows.generate(lm, null, queryPrompt, new PromptTemplate("answer", ANSWER),
        new SyntheticRows.Settings(TRAIN_SYNTHETIC + HELD_OUT, 1000, 24, 6, 1.0, 0.9, 32, 7));
    // 90 real training rows against 60 synthetic ones: the balancing repeats the synthetic.
    trained = Discriminator.fit(lm, Labelled.fromTask(split.train()).subList(0, 90),
        synthetic.subList(0, TRAIN_SYNTHETIC), settings(new Filter.TopFraction(0.5)));
  }

  @AfterAll
  static void close() {
    if (trained != null) {
      trained.close();
    }
  }

  private static DiscriminatorSettings settings(Filter filter) {
    return new DiscriminatorSettings(8, 16, 5e-3, 3, 8, DiscriminatorSettings.DEFAULT_TEMPLATE,
        " real", " synthetic", filter, 42);
  }

  /** Rows never trained on: 50 of the task's test split and 50 later generations. */
  private static List<Labelled> heldOutReal() {
    return Labelled.fromTask(split.test()).subList(0, HELD_OUT);
  }

  private static List<Labelled> heldOutSynthetic() {
    return synthetic.subList(TRAIN_SYNTHETIC, TRAIN_SYNTHETIC + HELD_OUT);
  }

  /** P(X >= k) for X ~ Binomial(n, 1/2), summed exactly from the binomial coefficients. */
  private static double binomialTail(int n, int k) {
    double tail = 0;
    double c = 1; // C(n, 0)
    for (int i = 0; i <= n; i++) {
      if (i >= k) {
        tail += c;
      }
      c = c * (n - i) / (i + 1);
    }
    return tail / Math.pow(2, n);
  }

  @Test
  void heldOutAccuracyIsFarAboveChance() {
    double[] real = trained.score(heldOutReal());
    double[] syn = trained.score(heldOutSynthetic());
    int correct = 0;
    for (double s : real) {
      correct += s > 0 ? 1 : 0;
    }
    for (double s : syn) {
      correct += s < 0 ? 1 : 0;
    }
    // Accuracy > 0.75 on 100 rows means >= 76 correct; a chance classifier (p = 0.5) gets that
    // with probability ~2e-7, far below 0.001.
    double p = binomialTail(2 * HELD_OUT, 76);
    assertTrue(p < 1e-3, "margin not significant: p = " + p);
    assertTrue(correct >= 76, "held-out accuracy " + correct + "/100; real scores "
        + Arrays.toString(real) + " synthetic " + Arrays.toString(syn));
    List<Double> losses = trained.losses();
    assertTrue(losses.get(losses.size() - 1) < losses.get(0) / 4, losses.toString());
  }

  @Test
  void filteringAMixedPoolKeepsTheRealRows() {
    List<Labelled> pool = new ArrayList<>(heldOutSynthetic()); // ids 1060-1109
    pool.addAll(heldOutReal()); // ids 0-49
    List<Scored> kept = trained.filter(pool);
    assertEquals(HELD_OUT, kept.size()); // top half of 100
    long real = kept.stream().filter(s -> s.row().id() < 1000).count();
    // the same 0.75 margin as the accuracy test, on the 50 kept rows
    assertTrue(real > 0.75 * HELD_OUT, real + " of the kept rows are real");
  }

  @Test
  void untrainedScoresAreTheBaseModelsLogOddsComputedByHand() {
    // The label ids after the prompt, written down by hand: " real" = ▁ (410) re a l and
    // " synthetic" = ▁s (262) y nt he t i c. Checked here by decoding, not by tokenising.
    int[] realIds = {410, 276, 412, 421};
    int[] synIds = {262, 422, 361, 260, 413, 417, 429};
    List<Labelled> rows = new ArrayList<>(heldOutReal().subList(0, 3));
    rows.addAll(heldOutSynthetic().subList(0, 3));
    try (Discriminator zero = Discriminator.untrained(lm, settings(new Filter.Threshold(0)))) {
      double[] got = zero.score(rows);
      for (int i = 0; i < rows.size(); i++) {
        Labelled r = rows.get(i);
        int[] prompt = lm.tokenizer().encode("Q: " + r.query() + "\nA: " + r.answer()
            + "\nReal or synthetic?", true);
        assertTrue(lm.tokenizer().decode(concat(prompt, realIds))
            .endsWith("\nReal or synthetic? real"));
        assertTrue(lm.tokenizer().decode(concat(prompt, synIds))
            .endsWith("\nReal or synthetic? synthetic"));
        List<float[]> lp = lm.logprobs(List.of(prompt, prompt), List.of(realIds, synIds), null,
            1);
        double want = 0;
        for (float v : lp.get(0)) {
          want += v;
        }
        for (float v : lp.get(1)) {
          want -= v;
        }
        assertEquals(want, got[i], 1e-3, "row " + r.id());
      }
      // So the untrained scores carry no training signal, but they are not all equal: the base
      // prefers the 4-piece label to the 8-piece one by tens of nats, and calls every held-out
      // row real, which is exactly chance accuracy on the balanced held-out set.
      double[] all = zero.score(heldOutReal());
      double[] allSyn = zero.score(heldOutSynthetic());
      assertTrue(Arrays.stream(all).allMatch(s -> s > 0)
          && Arrays.stream(allSyn).allMatch(s -> s > 0));
      assertNotEquals(got[0], got[1]);
    }
  }

  private static int[] concat(int[] a, int[] b) {
    int[] out = Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, out, a.length, b.length);
    return out;
  }

  @Test
  void savedAndLoadedDiscriminatorScoresTheSame(@TempDir Path dir) {
    Path out = dir.resolve("disc");
    trained.save(out);
    assertTrue(PeftFormat.isAdapterDir(out));
    try (Discriminator back = Discriminator.load(lm, out)) {
      assertEquals(trained.settings(), back.settings());
      assertEquals(trained.losses(), back.losses());
      List<Labelled> rows = heldOutSynthetic().subList(0, 5);
      assertArrayEquals(trained.score(rows), back.score(rows), 1e-9);
    }
  }

  @Test
  void syntheticRowsDependOnTheirIdAndSeedOnly() {
    String prompt = SyntheticRows.queryPrompt(List.of(), "Q: {input}\nA: {target}\n\n",
        "{examples}Q:"); // zero-shot: "Q:"
    assertEquals("Q:", prompt);
    PromptTemplate answer = new PromptTemplate("answer", ANSWER);
    List<Labelled> six = SyntheticRows.generate(lm, null, prompt, answer,
        new SyntheticRows.Settings(6, 10, 16, 6, 1.0, 0.9, 4, 3));
    List<Labelled> four = SyntheticRows.generate(lm, null, prompt, answer,
        new SyntheticRows.Settings(4, 12, 16, 6, 1.0, 0.9, 3, 3));
    assertEquals(six.subList(2, 6), four); // ids 12-15, other batches, same rows
    assertEquals(List.of(10L, 11L, 12L, 13L, 14L, 15L), six.stream().map(Labelled::id).toList());
    assertTrue(six.stream().noneMatch(r -> r.query().contains("\n") || r.answer().contains("\n")));
    List<Labelled> otherSeed = SyntheticRows.generate(lm, null, prompt, answer,
        new SyntheticRows.Settings(6, 10, 16, 6, 1.0, 0.9, 4, 4));
    assertNotEquals(six, otherSeed);
  }

  @Test
  void aLabelThatMergesWithThePromptIsRefused() {
    // "... b" + "ig" is the single piece ▁big, so the prompt's pieces are not a prefix.
    DiscriminatorSettings s = new DiscriminatorSettings(8, 16, 5e-3, 3, 8,
        "Q: {query}\nA: {answer}\nIt is b", "ig", "ad", new Filter.Threshold(0), 1);
    String m = assertThrows(IllegalArgumentException.class,
        () -> Discriminator.untrained(lm, s)).getMessage();
    assertTrue(m.contains("lt.translora.discriminator.real-label 'ig' merges with the end of "
        + "the prompt"), m);
  }

  @Test
  void aRowTooLongForTheModelKeepsBosAndItsEnd() {
    Labelled longRow = new Labelled(1, "True and ".repeat(200) + "True is", "True");
    Discriminator.Encoded e = trained.encode(longRow);
    int[] whole = lm.tokenizer().encode("Q: " + longRow.query() + "\nA: True\nReal or synthetic?",
        true);
    int max = lm.config().maxPositions(); // 512
    assertTrue(whole.length + e.synthetic().length > max, "the row is not too long");
    assertEquals(max, e.prompt().length + e.synthetic().length); // the longer label: 7 pieces
    assertEquals(whole[0], e.prompt()[0]); // BOS
    assertArrayEquals(Arrays.copyOfRange(whole, whole.length - (e.prompt().length - 1),
        whole.length), Arrays.copyOfRange(e.prompt(), 1, e.prompt().length));
    assertEquals(1, trained.score(List.of(longRow)).length); // within the model's positions
  }

  @Test
  void fittingNeedsBothClasses() {
    String m = assertThrows(IllegalArgumentException.class, () -> Discriminator.fit(lm,
        Labelled.fromTask(split.train()), List.of(), settings(new Filter.Threshold(0))))
        .getMessage();
    assertEquals("the discriminator needs real and synthetic rows (got 150 real, 0 synthetic)", m);
    assertFalse(split.train().isEmpty());
  }
}
