package org.loratransplant.migrate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.ndarray.NDManager;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.LoraConfig;
import org.loratransplant.model.Adapter;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.model.Projection;
import org.loratransplant.safetensors.SafeTensorsWriter;
import org.loratransplant.safetensors.TensorData;
import org.loratransplant.train.TrainerConfig;
import org.loratransplant.train.TrainingExample;
import org.loratransplant.train.objective.ModelOutputs;

/**
 * Migration on a tiny random Llama where layer L-1 can provably represent layer L's change.
 *
 * <p>Construction (3 layers, L = 2): layer 0 is an ordinary random layer, so the residual stream
 * {@code x} entering layer 1 is a non-trivial function of the tokens. Layers 1 and 2 have zero
 * {@code o_proj} and {@code down_proj}, so each is the identity on the residual stream, and they
 * share {@code post_attention_layernorm}, {@code gate_proj} and {@code up_proj}. Both therefore
 * see the same MLP input {@code n(x) = rms(x) * w_post} (attention adds 0 before it) and form the
 * same intermediate {@code m(x) = silu(Wg n) * (Wu n)}.
 *
 * <p>Teacher: a LoRA on layer 2's {@code down_proj} gives layer 2's output {@code x + s B A
 * m(x)}. Student: a LoRA on layer 1's {@code down_proj} gives layer 1's output {@code x + s B' A'
 * m(x)}, which layer 2 (identity, no LoRA) passes through unchanged. With {@code A' = A, B' = B}
 * the two layer-2 outputs, hence all logits, are equal: the optimum has zero loss, and what the
 * test measures is whether the step finds it (hidden-state MSE down by more than 90 %, KL to the
 * teacher near 0).
 */
class LayerMigrationTest {
  @TempDir Path tmp;

  static final String CONFIG = """
      {"model_type": "llama", "hidden_size": 8, "intermediate_size": 16,
       "num_hidden_layers": 3, "num_attention_heads": 2, "num_key_value_heads": 1,
       "vocab_size": 16, "max_position_embeddings": 32, "rms_norm_eps": 1e-5,
       "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2}
      """;

  Path tinyModel() throws IOException {
    Path dir = tmp.resolve("tiny");
    Files.createDirectories(dir);
    Files.writeString(dir.resolve("config.json"), CONFIG);
    SplittableRandom rng = new SplittableRandom(7);
    Map<String, TensorData> t = new LinkedHashMap<>();
    t.put("model.embed_tokens.weight", rand(rng, 1.0, 16, 8));
    t.put("model.norm.weight", ones(8));
    TensorData post = rand(rng, 0.5, 8);
    TensorData gate = rand(rng, 0.6, 16, 8);
    TensorData up = rand(rng, 0.6, 16, 8);
    for (int l = 0; l < 3; l++) {
      String p = "model.layers." + l + ".";
      boolean identity = l > 0;
      t.put(p + "input_layernorm.weight", ones(8));
      t.put(p + "post_attention_layernorm.weight", identity ? plusOne(post) : ones(8));
      t.put(p + "self_attn.q_proj.weight", rand(rng, 0.5, 8, 8));
      t.put(p + "self_attn.k_proj.weight", rand(rng, 0.5, 4, 8));
      t.put(p + "self_attn.v_proj.weight", rand(rng, 0.5, 4, 8));
      t.put(p + "self_attn.o_proj.weight", identity ? zeros(8, 8) : rand(rng, 0.5, 8, 8));
      t.put(p + "mlp.gate_proj.weight", identity ? gate : rand(rng, 0.6, 16, 8));
      t.put(p + "mlp.up_proj.weight", identity ? up : rand(rng, 0.6, 16, 8));
      t.put(p + "mlp.down_proj.weight", identity ? zeros(8, 16) : rand(rng, 0.4, 8, 16));
    }
    SafeTensorsWriter.write(dir.resolve("model.safetensors"), t, Map.of("format", "pt"));
    return dir;
  }

  static TensorData rand(SplittableRandom rng, double scale, long... shape) {
    int n = (int) java.util.Arrays.stream(shape).reduce(1, (a, b) -> a * b);
    float[] v = new float[n];
    for (int i = 0; i < n; i++) {
      v[i] = (float) (rng.nextGaussian() * scale);
    }
    return TensorData.ofFloat32(shape, v);
  }

  static TensorData ones(int n) {
    float[] v = new float[n];
    java.util.Arrays.fill(v, 1f);
    return TensorData.ofFloat32(new long[] {n}, v);
  }

  static TensorData plusOne(TensorData d) {
    java.nio.FloatBuffer fb = java.nio.ByteBuffer.wrap(d.data())
        .order(java.nio.ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
    float[] v = new float[fb.remaining()];
    fb.get(v);
    for (int i = 0; i < v.length; i++) {
      v[i] += 1;
    }
    return TensorData.ofFloat32(new long[] {v.length}, v);
  }

  static TensorData zeros(long... shape) {
    return TensorData.ofFloat32(shape, new float[(int) (shape[0] * shape[1])]);
  }

  static final LoraConfig DOWN = new LoraConfig(2, 4, 0, EnumSet.of(Projection.DOWN_PROJ),
      List.of(2), false, "tiny");

  /** A non-zero LoRA on layer 2's down_proj: A (2, 16), B (8, 2). */
  static LoraAdapter teacher(LanguageModel lm) {
    SplittableRandom rng = new SplittableRandom(11);
    float[] a = new float[2 * 16];
    float[] b = new float[8 * 2];
    for (int i = 0; i < a.length; i++) {
      a[i] = (float) (rng.nextGaussian() * 0.5);
    }
    for (int i = 0; i < b.length; i++) {
      b[i] = (float) (rng.nextGaussian() * 0.5);
    }
    return LoraAdapter.of(DOWN, lm.config(), lm.model().manager(),
        Map.of(new LoraAdapter.Key(2, Projection.DOWN_PROJ), new LoraAdapter.Matrices(a, b)));
  }

  static List<int[]> sequences(int n, long seed) {
    SplittableRandom rng = new SplittableRandom(seed);
    List<int[]> out = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      int[] s = new int[10];
      s[0] = 1;
      for (int j = 1; j < s.length; j++) {
        s[j] = 3 + rng.nextInt(13);
      }
      out.add(s);
    }
    return out;
  }

  static List<TrainingExample> examples(List<int[]> seqs) {
    List<TrainingExample> out = new ArrayList<>();
    for (int[] s : seqs) {
      out.add(TrainingExample.full(new int[] {s[0]}, java.util.Arrays.copyOfRange(s, 1,
          s.length)));
    }
    return out;
  }

  /** Mean over positions and dimensions of (layer-2 output with a - with b)^2, computed here. */
  static double hiddenMse(LanguageModel lm, Adapter a, Adapter b, List<int[]> seqs) {
    double sum = 0;
    long n = 0;
    for (int[] s : seqs) {
      long[] ids = java.util.Arrays.stream(s).asLongStream().toArray();
      try (NDManager scope = lm.model().manager().newSubManager()) {
        float[] x = ModelOutputs.run(lm.model(), a, ids, 1, s.length, scope, null, false,
            Set.of(2)).layer(2).toFloatArray();
        float[] y = ModelOutputs.run(lm.model(), b, ids, 1, s.length, scope, null, false,
            Set.of(2)).layer(2).toFloatArray();
        for (int i = 0; i < x.length; i++) {
          sum += (x[i] - y[i]) * (double) (x[i] - y[i]);
          n++;
        }
      }
    }
    return sum / n;
  }

  static TrainerConfig trainer(int epochs) {
    return new TrainerConfig(2e-2, epochs, 8, 0, 0.0, 1.0, 1, 3, 0,
        TrainerConfig.LossNormaliser.WEIGHT_SUM, 0, 0);
  }

  @Test
  void aStepOntoALayerThatCanRepresentTheChangeRecoversIt() throws IOException {
    try (LanguageModel lm = LanguageModel.load(tinyModel(), Device.cpu());
        LoraAdapter teacher = teacher(lm)) {
      List<int[]> train = sequences(64, 1);
      List<int[]> held = sequences(16, 99);
      double mseBefore = hiddenMse(lm, teacher, null, held); // the student starts as the base
      double klBefore = MeanKl.between(lm.model(), teacher, null, held, 8);
      assertTrue(mseBefore > 1e-2 && klBefore > 1e-3, "the teacher must change the model: mse "
          + mseBefore + ", kl " + klBefore);
      LayerMigration.Step step = LayerMigration.step(lm, teacher, examples(train),
          MigrationSettings.mseOnly(trainer(40)), 5);
      try (LoraAdapter student = step.student()) {
        assertEquals(Set.of(new LoraAdapter.Key(1, Projection.DOWN_PROJ)),
            student.pairs().keySet());
        double mseAfter = hiddenMse(lm, teacher, student, held);
        double klAfter = MeanKl.between(lm.model(), teacher, student, held, 8);
        System.out.printf("mse %.5f -> %.6f, kl %.5f -> %.6f%n", mseBefore, mseAfter, klBefore,
            klAfter);
        assertTrue(mseAfter < 0.1 * mseBefore, "MSE must fall by > 90 %: " + mseBefore
            + " -> " + mseAfter);
        assertTrue(klAfter < 0.05 * klBefore && klAfter < 1e-3, "KL to the teacher must go "
            + "near 0: " + klBefore + " -> " + klAfter);
      }
    }
  }

  @Test
  void aChainMovesTheLoraOneLayerDownPerStepKeepingItsShape()
      throws IOException {
    try (LanguageModel lm = LanguageModel.load(tinyModel(), Device.cpu());
        LoraAdapter teacher = teacher(lm)) {
      List<int[]> from = new ArrayList<>();
      List<int[]> to = new ArrayList<>();
      List<Set<Integer>> held = new ArrayList<>();
      try (LoraAdapter last = LayerMigration.walk(lm, teacher, 0,
          examples(sequences(16, 1)), MigrationSettings.mseOnly(trainer(1)), 5, s -> {
            from.add(new int[] {s.from()});
            to.add(new int[] {s.to()});
            TreeSet<Integer> layers = new TreeSet<>();
            s.student().pairs().keySet().forEach(k -> layers.add(k.layer()));
            held.add(layers);
            assertEquals(List.of(s.to()), s.student().config().layersToTransform());
          })) {
        assertEquals(2, from.size());
        assertEquals(2, from.get(0)[0]);
        assertEquals(1, to.get(0)[0]);
        assertEquals(1, from.get(1)[0]);
        assertEquals(0, to.get(1)[0]);
        assertEquals(List.of(Set.of(1), Set.of(0)), held);
        assertEquals(0, LayerMigration.onlyLayer(last));
        assertEquals(teacher.config().r(), last.config().r());
        assertEquals(teacher.config().targetModules(), last.config().targetModules());
      }
      assertEquals(List.of(2, 1, 0), LayerMigration.chain(2, 0, 3));
      assertThrows(IllegalArgumentException.class, () -> LayerMigration.chain(2, 2, 3));
      assertThrows(IllegalArgumentException.class, () -> LayerMigration.chain(3, 1, 3));
      try (LoraAdapter everyLayer = LoraAdapter.create(new LoraConfig(2, 4, 0,
          EnumSet.of(Projection.DOWN_PROJ), List.of(), false, ""), lm.config(),
          lm.model().manager(), 1)) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> LayerMigration.onlyLayer(everyLayer));
        assertTrue(e.getMessage().contains("[0, 1, 2]"), e.getMessage());
      }
    }
  }

  /**
   * The comparison's step on an adapter over every layer: the LoRA on the top layer (2) is
   * distilled into layer 1's (which starts at B = 0 here, so the construction above still makes
   * the change representable), while layer 0's non-zero LoRA stays frozen as it is: it shifts
   * teacher and student alike.
   */
  @Test
  void theTopLayerStepMovesTheTopLoraDownAndKeepsTheLowerOnesFrozen() throws IOException {
    try (LanguageModel lm = LanguageModel.load(tinyModel(), Device.cpu())) {
      LoraConfig all = new LoraConfig(2, 4, 0, EnumSet.of(Projection.DOWN_PROJ), List.of(0, 1, 2),
          false, "tiny");
      SplittableRandom rng = new SplittableRandom(11);
      Map<LoraAdapter.Key, LoraAdapter.Matrices> values = new LinkedHashMap<>();
      for (int l = 0; l < 3; l++) {
        float[] a = new float[2 * 16];
        float[] b = new float[8 * 2];
        for (int i = 0; i < a.length; i++) {
          a[i] = (float) (rng.nextGaussian() * 0.5);
        }
        for (int i = 0; i < b.length && l != 1; i++) {
          b[i] = (float) (rng.nextGaussian() * (l == 0 ? 0.1 : 0.5));
        }
        values.put(new LoraAdapter.Key(l, Projection.DOWN_PROJ), new LoraAdapter.Matrices(a, b));
      }
      try (LoraAdapter expert = LoraAdapter.of(all, lm.config(), lm.model().manager(), values)) {
        List<int[]> held = sequences(16, 99);
        float[] layer0 = expert.pairs().get(new LoraAdapter.Key(0, Projection.DOWN_PROJ)).bT()
            .toFloatArray();
        LayerMigration.Step step = LayerMigration.topLayer(lm, expert,
            examples(sequences(64, 1)), MigrationSettings.mseOnly(trainer(40)));
        try (LoraAdapter student = step.student()) {
          assertEquals(2, step.from());
          assertEquals(1, step.to());
          assertEquals(List.of(0, 1), student.config().layersToTransform());
          assertEquals(Set.of(new LoraAdapter.Key(0, Projection.DOWN_PROJ),
              new LoraAdapter.Key(1, Projection.DOWN_PROJ)), student.pairs().keySet());
          assertTrue(java.util.Arrays.equals(layer0, student.pairs().get(new LoraAdapter.Key(0,
              Projection.DOWN_PROJ)).bT().toFloatArray()), "layer 0's LoRA is kept frozen");
          // Before: the expert's lower layers alone (the top LoRA dropped, layer 1 at B = 0).
          try (LoraAdapter dropped = LoraAdapter.of(new LoraConfig(2, 4, 0,
              EnumSet.of(Projection.DOWN_PROJ), List.of(0, 1), false, "tiny"), lm.config(),
              lm.model().manager(), Map.of(new LoraAdapter.Key(0, Projection.DOWN_PROJ),
                  values.get(new LoraAdapter.Key(0, Projection.DOWN_PROJ)),
                  new LoraAdapter.Key(1, Projection.DOWN_PROJ),
                  values.get(new LoraAdapter.Key(1, Projection.DOWN_PROJ))))) {
            double before = hiddenMse(lm, expert, dropped, held);
            double after = hiddenMse(lm, expert, student, held);
            assertTrue(before > 1e-2, "the top LoRA must matter: " + before);
            assertTrue(after < 0.1 * before, "MSE must fall by > 90 %: " + before + " -> "
                + after);
          }
        }
      }
      try (LoraAdapter gap = LoraAdapter.create(new LoraConfig(2, 4, 0,
          EnumSet.of(Projection.DOWN_PROJ), List.of(0, 2), false, ""), lm.config(),
          lm.model().manager(), 1)) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> LayerMigration.topLayer(lm, gap, examples(sequences(4, 1)),
                MigrationSettings.mseOnly(trainer(1))));
        assertTrue(e.getMessage().contains("[0, 2]"), e.getMessage());
      }
    }
  }
}
