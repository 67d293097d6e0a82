package org.loratransplant.train.objective;

import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.Device;
import ai.djl.ndarray.NDManager;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.testing.SharedData;
import org.loratransplant.train.TrainerConfig.LossNormaliser;
import org.loratransplant.train.TrainingExample;

/**
 * The default objective on a real stories260K batch (rows of different lengths, fractional
 * weights) against the cross-entropy computed from {@link LanguageModel#logprobs}, a separate
 * (fused) forward path.
 */
class MaskedCrossEntropyTest {
  private static LanguageModel lm;
  private static List<TrainingExample> data;

  @BeforeAll
  static void load() {
    lm = LanguageModel.load(SharedData.model("stories260K"), Device.cpu());
    data = new ArrayList<>();
    int k = 0;
    for (TrainingExample ex : Fixtures.examples(lm, 3)) {
      float[] w = new float[ex.response().length];
      for (int i = 0; i < w.length; i++) {
        w[i] = (i + k) % 3 == 0 ? 0f : (i % 2 == 0 ? 1f : 0.25f);
      }
      data.add(new TrainingExample(ex.prompt(), ex.response(), w));
      k++;
    }
  }

  @AfterAll
  static void close() {
    lm.close();
  }

  /** {@code sum w_i * -log p_i / N} from the fused scorer, N per the normaliser. */
  private static double expected(LossNormaliser n) {
    List<int[]> prompts = new ArrayList<>();
    List<int[]> responses = new ArrayList<>();
    data.forEach(ex -> {
      prompts.add(ex.prompt());
      responses.add(ex.response());
    });
    List<float[]> lp = lm.logprobs(prompts, responses, null, 4);
    double sum = 0;
    double weights = 0;
    int tokens = 0;
    for (int r = 0; r < data.size(); r++) {
      for (int i = 0; i < lp.get(r).length; i++) {
        sum += data.get(r).weights()[i] * -lp.get(r)[i];
        weights += data.get(r).weights()[i];
        tokens++;
      }
    }
    return sum / (n == LossNormaliser.WEIGHT_SUM ? weights : tokens);
  }

  private static double loss(Objective o, LossNormaliser n) {
    TokenBatch b = TokenBatch.of(data, new int[] {0, 1, 2, 3}, n);
    try (NDManager scope = lm.model().manager().newSubManager()) {
      ModelOutputs out = ModelOutputs.run(lm.model(), null, b, scope, null, false, Set.of());
      return o.loss(out, b, o.teach(b, scope)).getFloat();
    }
  }

  @Test
  void equalsTheCrossEntropyOfTheScorersLogprobs() {
    for (LossNormaliser n : LossNormaliser.values()) {
      assertEquals(expected(n), loss(Objectives.crossEntropy(), n), 1e-5, n.name());
    }
  }

  @Test
  void aWeightedSumScalesAndAddsTerms() {
    Objective ce = Objectives.crossEntropy();
    double one = loss(ce, LossNormaliser.WEIGHT_SUM);
    assertEquals(2.5 * one, loss(Objectives.sum(Objectives.term(2.5, ce)),
        LossNormaliser.WEIGHT_SUM), 1e-5);
    assertEquals(0.75 * one, loss(Objectives.sum(Objectives.term(1, ce),
        Objectives.term(-0.25, ce)), LossNormaliser.WEIGHT_SUM), 1e-5);
  }

  /**
   * The last response token (the eos every answer ends with) reaches the loss: weighting only
   * it gives exactly -log P(eos | prompt, answer) from the scorer. (That the stories models'
   * experts still give eos about -5.3 is not the loss: their lm_head row for eos is ~0, like the
   * ~200 byte tokens never seen in pre-training, so P(eos) is capped near 1/208 whatever a LoRA on
   * the projections does.)
   */
  @Test
  void theLastResponseTokenIsInTheLoss() {
    TrainingExample ex = Fixtures.examples(lm, 1).get(0);
    int n = ex.response().length;
    float[] w = new float[n];
    w[n - 1] = 1f;
    List<TrainingExample> one = List.of(new TrainingExample(ex.prompt(), ex.response(), w));
    TokenBatch b = TokenBatch.of(one, new int[] {0}, LossNormaliser.WEIGHT_SUM);
    double loss;
    try (NDManager scope = lm.model().manager().newSubManager()) {
      ModelOutputs out = ModelOutputs.run(lm.model(), null, b, scope, null, false, Set.of());
      Objective ce = Objectives.crossEntropy();
      loss = ce.loss(out, b, ce.teach(b, scope)).getFloat();
    }
    float[] lp = lm.logprobs(List.of(ex.prompt()), List.of(ex.response()), null, 1).get(0);
    assertEquals(-lp[n - 1], loss, 1e-4);
  }

  /** The adapter's gradients of a loss computed by {@code loss} from one forward. */
  private static List<float[]> gradients(org.loratransplant.lora.LoraAdapter a, TokenBatch b,
      java.util.function.BiFunction<ModelOutputs, NDManager, ai.djl.ndarray.NDArray> loss) {
    a.parameters().forEach(p -> p.setRequiresGradient(true));
    List<float[]> out = new ArrayList<>();
    try (NDManager scope = lm.model().manager().newSubManager();
        ai.djl.training.GradientCollector gc =
            ai.djl.engine.Engine.getInstance().newGradientCollector()) {
      ModelOutputs o = ModelOutputs.run(lm.model(), a, b, scope, null, false, Set.of());
      gc.backward(loss.apply(o, scope));
      for (ai.djl.ndarray.NDArray p : a.parameters()) {
        ai.djl.ndarray.NDArray g = p.getGradient();
        out.add(g.toFloatArray());
        g.subi(g); // gradients accumulate across backward passes
      }
    }
    return out;
  }

  /**
   * The chunked loss ({@link ModelOutputs#weightedNll}: the head, its softmax and the gradient a
   * few rows at a time, the gradient handed to autograd through a surrogate) against autograd
   * through every position's logits: the same loss and the same adapter gradients, with one
   * chunk and with chunks of 7 rows (the last one shorter), every position weighted or some not.
   */
  @Test
  void theChunkedLossAndGradientsEqualAutogradThroughTheFullLogits() {
    List<TrainingExample> all = new ArrayList<>();
    for (TrainingExample ex : data) {
      float[] w = new float[ex.response().length];
      java.util.Arrays.fill(w, 0.5f);
      all.add(new TrainingExample(ex.prompt(), ex.response(), w));
    }
    try (org.loratransplant.lora.LoraAdapter a = Fixtures.randomExpert(lm, List.of(), 11, 0.05)) {
      for (List<TrainingExample> set : List.of(data, all)) {
        TokenBatch b = TokenBatch.of(set, new int[] {0, 1, 2, 3}, LossNormaliser.WEIGHT_SUM);
        int counted = 0;
        for (float w : b.weights()) {
          counted += w != 0 ? 1 : 0;
        }
        long[] at = new long[counted];
        long[] targets = new long[counted];
        float[] weights = new float[counted];
        for (int i = 0, k = 0; i < b.weights().length; i++) {
          if (b.weights()[i] != 0) {
            at[k] = i;
            targets[k] = b.targets()[i];
            weights[k++] = b.weights()[i];
          }
        }
        double d = b.denominator(null);
        float[] lossFull = new float[1];
        List<float[]> full = gradients(a, b, (o, scope) -> {
          ai.djl.ndarray.NDArray l = o.logits().logSoftmax(-1).gather(scope.create(b.targets(),
              new ai.djl.ndarray.types.Shape(b.rows(), b.length(), 1)), -1)
              .reshape(b.rows(), b.length()).mul(scope.create(b.weights(),
                  new ai.djl.ndarray.types.Shape(b.rows(), b.length()))).sum().neg()
              .div((float) d);
          lossFull[0] = l.getFloat();
          return l;
        });
        for (long chunkValues : new long[] {ModelOutputs.CHUNK_VALUES,
            7L * lm.config().vocabSize()}) {
          float[] lossChunked = new float[1];
          List<float[]> chunked = gradients(a, b, (o, scope) -> {
            ai.djl.ndarray.NDArray l = o.weightedNll(at, targets, weights, d, chunkValues);
            lossChunked[0] = l.getFloat();
            return l;
          });
          assertEquals(lossFull[0], lossChunked[0], 1e-5 * Math.abs(lossFull[0]));
          assertSameGradients(full, chunked, counted + " weighted, " + chunkValues
              + " values a chunk");
        }
      }
    }
  }

  /**
   * Where prompts and zero weights leave positions out, only the weighted ones go through the LM
   * head: the adapter's gradients equal those of the full formula (every position's logits,
   * weighted by 0 or w) up to float rounding.
   */
  @Test
  void theLmHeadOnWeightedPositionsOnlyGivesTheFullFormulasGradients() {
    TokenBatch b = TokenBatch.of(data, new int[] {0, 1, 2, 3}, LossNormaliser.WEIGHT_SUM);
    int zeros = 0;
    for (float w : b.weights()) {
      zeros += w == 0 ? 1 : 0;
    }
    // Prompts, padding and zero weights: 48 of the 100 positions are left out.
    org.junit.jupiter.api.Assertions.assertTrue(zeros > 0 && zeros < b.weights().length,
        zeros + " of " + b.weights().length + " positions unweighted");
    try (org.loratransplant.lora.LoraAdapter a = Fixtures.randomExpert(lm, List.of(), 9, 0.05)) {
      List<float[]> picked = gradients(a, b, (o, scope) ->
          Objectives.crossEntropy().loss(o, b, TeacherOutputs.none()));
      List<float[]> full = gradients(a, b, (o, scope) -> o.logits().logSoftmax(-1)
          .gather(scope.create(b.targets(), new ai.djl.ndarray.types.Shape(b.rows(), b.length(),
              1)), -1).reshape(b.rows(), b.length())
          .mul(scope.create(b.weights(), new ai.djl.ndarray.types.Shape(b.rows(), b.length())))
          .sum().neg().div((float) b.denominator(null)));
      assertSameGradients(full, picked, "weighted positions only");
    }
  }

  /** Not nil, and equal to {@code full} within 1e-5 of its largest magnitude. */
  private static void assertSameGradients(List<float[]> full, List<float[]> other, String what) {
    double max = 0;
    double diff = 0;
    for (int k = 0; k < full.size(); k++) {
      for (int i = 0; i < full.get(k).length; i++) {
        max = Math.max(max, Math.abs(full.get(k)[i]));
        diff = Math.max(diff, Math.abs(full.get(k)[i] - other.get(k)[i]));
      }
    }
    org.junit.jupiter.api.Assertions.assertTrue(max > 1e-3, what + ": gradients are nil: " + max);
    org.junit.jupiter.api.Assertions.assertTrue(diff <= 1e-5 * max,
        what + ": max |full - other| " + diff + " against max |grad| " + max);
  }
}
