package org.loratransplant.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.model.ModelConfig;
import org.loratransplant.safetensors.Checkpoint;
import org.loratransplant.safetensors.DType;

/**
 * A random model of a published shape (cut to two layers and a small vocabulary so the test
 * stays fast) is a Hugging Face checkpoint our loader reads with the shape asked for, weights
 * as HF initialises them, finite log-probs, and a tokenizer that round-trips text; the bf16 and
 * sharded variants load to the same model.
 */
class RandomModelTest {
  @TempDir Path tmp;

  private static final RandomModel.Shape SHAPE =
      RandomModel.scaled(RandomModel.shape("smollm-135m"), 2, 1000, 64);

  @Test
  void writesAModelOfTheShapeThatLoadsAndScores() {
    Path dir = tmp.resolve("m");
    RandomModel.write(SHAPE, dir, 5, DType.F32);
    ModelConfig c = ModelConfig.load(dir);
    assertEquals(576, c.hiddenSize());
    assertEquals(1536, c.intermediateSize());
    assertEquals(2, c.numLayers());
    assertEquals(9, c.numHeads());
    assertEquals(3, c.numKvHeads());
    assertEquals(64, c.headDim());
    assertEquals(1000, c.vocabSize());
    assertTrue(c.tieWordEmbeddings());
    assertEquals(10000.0, c.ropeTheta());
    try (Checkpoint ckpt = Checkpoint.open(dir)) {
      float[] w = ckpt.readFloat32("model.layers.1.mlp.down_proj.weight");
      double sum = 0;
      double sq = 0;
      for (float v : w) {
        sum += v;
        sq += v * v;
      }
      double mean = sum / w.length;
      double std = Math.sqrt(sq / w.length - mean * mean);
      assertEquals(0.02, std, 0.0005, "HF's init std");
      assertEquals(0, mean, 0.0005);
      float[] norm = ckpt.readFloat32("model.layers.0.input_layernorm.weight");
      for (float v : norm) {
        assertEquals(1f, v);
      }
    }
    float[] f32 = scores(dir, true);
    Path bf16 = tmp.resolve("bf16");
    RandomModel.write(SHAPE, bf16, 5, DType.BF16);
    float[] b = scores(bf16, false);
    Path sharded = tmp.resolve("sharded");
    RandomModel.write(SHAPE, sharded, 5, DType.F32, 3_000_000);
    assertTrue(Files.exists(sharded.resolve(Checkpoint.INDEX_FILE)));
    assertFalse(Files.exists(sharded.resolve(Checkpoint.SINGLE_FILE)));
    float[] s = scores(sharded, false);
    for (int i = 0; i < f32.length; i++) {
      assertEquals(f32[i], s[i], 1e-6, "sharded token " + i);
      assertEquals(f32[i], b[i], 0.05, "bf16 token " + i);
    }
  }

  @Test
  void thePublishedShapesHaveTheirPublishedSizes() {
    // Parameter counts as the model cards give them.
    assertEquals(134.5e6, RandomModel.shape("smollm-135m").parameters(), 0.5e6);
    assertEquals(361.8e6, RandomModel.shape("smollm-360m").parameters(), 0.5e6);
    assertEquals(1.236e9, RandomModel.shape("llama-1b").parameters(), 0.005e9);
    assertEquals(6.738e9, RandomModel.shape("llama-7b").parameters(), 0.005e9);
  }

  /** Log-probs of a text through the model; checks the tokenizer round trip when asked. */
  private static float[] scores(Path dir, boolean checkTokenizer) {
    try (LanguageModel lm = LanguageModel.load(dir, Device.cpu())) {
      String text = "Once upon a time, 42 cats!";
      int[] ids = lm.tokenizer().encode(text, true);
      assertEquals(1, ids[0], "bos first");
      if (checkTokenizer) {
        assertEquals(text, lm.tokenizer().decode(java.util.Arrays.copyOfRange(ids, 1,
            ids.length)));
      }
      float[] lp = lm.logprobs(List.of(new int[] {ids[0]}),
          List.of(java.util.Arrays.copyOfRange(ids, 1, ids.length)), null, 1).get(0);
      for (float v : lp) {
        assertTrue(Float.isFinite(v) && v < 0, "log-prob " + v);
      }
      return lp;
    }
  }
}
