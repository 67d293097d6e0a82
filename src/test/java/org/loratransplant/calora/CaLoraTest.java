package org.loratransplant.calora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import com.fasterxml.jackson.databind.JsonNode;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.cli.Main;
import org.loratransplant.compress.Compressor;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.LoraConfig;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.model.Adapter;
import org.loratransplant.model.GenerationParams;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.model.ModelConfig;
import org.loratransplant.model.Projection;
import org.loratransplant.testing.Models;
import org.loratransplant.testing.SharedData;
import org.loratransplant.train.TrainerConfig;
import org.loratransplant.train.TrainingExample;
import org.loratransplant.train.objective.ModelOutputs;
import org.loratransplant.train.objective.ModelTeacher;

/** CA-LoRA's recovery modules, its adapter on disk and at inference, its training and command. */
class CaLoraTest {
  @TempDir Path tmp;

  static final LoraConfig QV_DOWN = new LoraConfig(4, 8, 0, EnumSet.of(Projection.Q_PROJ,
      Projection.V_PROJ, Projection.DOWN_PROJ), List.of(), false, "stories260K");

  /** A LoRA with random non-zero A and B on every layer's q, v and down projections. */
  static LoraAdapter randomLora(LanguageModel lm, long seed, double scale) {
    SplittableRandom rng = new SplittableRandom(seed);
    Map<LoraAdapter.Key, LoraAdapter.Matrices> v = new LinkedHashMap<>();
    for (int l = 0; l < lm.config().numLayers(); l++) {
      for (Projection p : QV_DOWN.targetModules()) {
        float[] a = new float[4 * p.inFeatures(lm.config())];
        float[] b = new float[p.outFeatures(lm.config()) * 4];
        for (int i = 0; i < a.length; i++) {
          a[i] = (float) (rng.nextGaussian() * scale);
        }
        for (int i = 0; i < b.length; i++) {
          b[i] = (float) (rng.nextGaussian() * scale);
        }
        v.put(new LoraAdapter.Key(l, p), new LoraAdapter.Matrices(a, b));
      }
    }
    return LoraAdapter.of(QV_DOWN, lm.config(), lm.model().manager(), v);
  }

  static float[] gaussian(SplittableRandom rng, int n, double scale) {
    float[] v = new float[n];
    for (int i = 0; i < n; i++) {
      v[i] = (float) (rng.nextGaussian() * scale);
    }
    return v;
  }

  @Test
  void recoveryForwardAndGradientsMatchAHandComputation() {
    LanguageModel lm = Models.shared(SharedData.model("stories260K"));
    ModelConfig c = lm.config();
    Projection p = Projection.DOWN_PROJ; // in = intermediate, out = hidden: not square
    int in = p.inFeatures(c);
    int out = p.outFeatures(c);
    int r = 3;
    int rows = 2;
    SplittableRandom rng = new SplittableRandom(13);
    float[] d = gaussian(rng, in * r, 0.3);
    float[] u = gaussian(rng, r * out, 0.3);
    float[] x = gaussian(rng, rows * in, 1.0);
    float[] g = gaussian(rng, rows * out, 1.0); // loss = sum(R(x) * g)
    for (RecoveryActivation act : RecoveryActivation.values()) {
      // by hand: h = x D (rows, r), s = sigma(h), R = s U; dU = s^T g; dD = x^T ((g U^T) * s')
      double[] h = new double[rows * r];
      for (int i = 0; i < rows; i++) {
        for (int k = 0; k < r; k++) {
          for (int j = 0; j < in; j++) {
            h[i * r + k] += x[i * in + j] * (double) d[j * r + k];
          }
        }
      }
      double[] want = new double[rows * out];
      double[] wantDu = new double[r * out];
      double[] wantDd = new double[in * r];
      for (int i = 0; i < rows; i++) {
        for (int k = 0; k < r; k++) {
          double s = act.apply(h[i * r + k]);
          double eps = 1e-6;
          double ds = (act.apply(h[i * r + k] + eps) - act.apply(h[i * r + k] - eps)) / (2 * eps);
          double gu = 0;
          for (int o = 0; o < out; o++) {
            want[i * out + o] += s * u[k * out + o];
            wantDu[k * out + o] += s * g[i * out + o];
            gu += g[i * out + o] * (double) u[k * out + o];
          }
          for (int j = 0; j < in; j++) {
            wantDd[j * r + k] += x[i * in + j] * gu * ds;
          }
        }
      }
      try (NDManager m = lm.model().manager().newSubManager();
          RecoveryModules rec = RecoveryModules.of(c, r, act, m,
              Map.of(new LoraAdapter.Key(1, p), new float[][] {d, u}))) {
        assertEquals(null, rec.delta(0, p, m.zeros(new Shape(rows, in)), false));
        List<NDArray> params = rec.parameters();
        params.forEach(a -> a.setRequiresGradient(true));
        NDArray xs = m.create(x, new Shape(rows, in));
        float[] got;
        try (GradientCollector gc = Engine.getInstance().newGradientCollector()) {
          NDArray y = rec.delta(1, p, xs, true);
          got = y.toFloatArray();
          gc.backward(y.mul(m.create(g, new Shape(rows, out))).sum());
        }
        float[] gotDd = params.get(0).getGradient().toFloatArray();
        float[] gotDu = params.get(1).getGradient().toFloatArray();
        for (int i = 0; i < want.length; i++) {
          assertEquals(want[i], got[i], 1e-4, act + " output " + i);
        }
        for (int i = 0; i < wantDu.length; i++) {
          assertEquals(wantDu[i], gotDu[i], 1e-4, act + " dU " + i);
        }
        for (int i = 0; i < wantDd.length; i++) {
          assertEquals(wantDd[i], gotDd[i], 2e-4 * Math.max(1, Math.abs(wantDd[i])),
              act + " dD " + i);
        }
      }
    }
  }

  @Test
  void zeroInitialisedRecoveryGivesTheInheritedModelsLogProbsAndGenerations() {
    LanguageModel lm = Models.shared(SharedData.model("stories260K"));
    List<int[]> prompts = new ArrayList<>();
    List<int[]> responses = new ArrayList<>();
    for (String t : new String[] {"Lily liked to play with her red ball.",
        "Tom saw a big dog in the park and he was happy."}) {
      int[] ids = lm.tokenizer().encode(t, true);
      prompts.add(Arrays.copyOf(ids, 3));
      responses.add(Arrays.copyOfRange(ids, 3, ids.length));
    }
    CaLoraSettings s = new CaLoraSettings(4, RecoveryActivation.SIGMOID, 1, true,
        TrainerConfig.paperDefaults());
    try (LoraAdapter lora = randomLora(lm, 3, 0.1)) {
      PeftFormat.write(lora, tmp.resolve("src"));
      List<float[]> inherited = lm.logprobs(prompts, responses, lora, 8); // fused, folded path
      GenerationParams greedy = GenerationParams.greedy(12, lm.eosIds());
      List<LanguageModel.Generation> inheritedGen = lm.generate(prompts, new long[2], greedy,
          lora, 8);
      try (CaLoraAdapter ca = CaLora.inherit(lm, tmp.resolve("src"), s, 7)) {
        assertFalse(ca.hasWeightDeltas());
        List<float[]> got = lm.logprobs(prompts, responses, ca, 8); // eager path
        for (int i = 0; i < got.size(); i++) {
          assertArrayEquals(inherited.get(i), got.get(i), 1e-4f, "request " + i);
        }
        List<LanguageModel.Generation> gen = lm.generate(prompts, new long[2], greedy, ca, 8);
        for (int i = 0; i < gen.size(); i++) {
          assertArrayEquals(inheritedGen.get(i).tokens(), gen.get(i).tokens());
        }
        // a non-zero U moves them, and what is written is read back the same
        for (RecoveryModules.Module mod : ca.recovery().modules().values()) {
          mod.u().set(gaussian(new SplittableRandom(1), (int) mod.u().size(), 0.5));
        }
        List<float[]> moved = lm.logprobs(prompts, responses, ca, 8);
        assertTrue(Math.abs(moved.get(0)[0] - inherited.get(0)[0]) > 1e-3);
        ca.write(tmp.resolve("ca"));
        assertTrue(CaLoraAdapter.isCaLora(tmp.resolve("ca")));
        try (CaLoraAdapter back = CaLoraAdapter.read(tmp.resolve("ca"), lm.config(),
            lm.model().manager());
            LoraAdapter loraOnly = PeftFormat.read(tmp.resolve("ca"), lm.config(),
                lm.model().manager())) {
          List<float[]> again = lm.logprobs(prompts, responses, back, 8);
          for (int i = 0; i < again.size(); i++) {
            assertArrayEquals(moved.get(i), again.get(i), 1e-5f);
          }
          // the PEFT part alone is the LoRA (what PEFT loads from the directory)
          List<float[]> peft = lm.logprobs(prompts, responses, loraOnly, 8);
          assertArrayEquals(inherited.get(0), peft.get(0), 1e-5f);
        }
      }
    }
  }

  /** Mean squared difference of every layer output, compressed+student vs full+teacher. */
  static double hiddenMse(LanguageModel student, Adapter a, LanguageModel teacher, Adapter t,
      List<int[]> seqs) {
    double sum = 0;
    long n = 0;
    Set<Integer> layers = Set.of(0, 1, 2, 3, 4);
    for (int[] s : seqs) {
      long[] ids = Arrays.stream(s).asLongStream().toArray();
      try (NDManager scope = student.model().manager().newSubManager()) {
        ModelOutputs x = ModelOutputs.run(student.model(), a, ids, 1, s.length, scope, null,
            false, layers);
        ModelOutputs y = ModelOutputs.run(teacher.model(), t, ids, 1, s.length, scope, null,
            false, layers);
        for (int l : layers) {
          float[] xs = x.layer(l).toFloatArray();
          float[] ys = y.layer(l).toFloatArray();
          for (int i = 0; i < xs.length; i++) {
            sum += (xs[i] - ys[i]) * (double) (xs[i] - ys[i]);
            n++;
          }
        }
      }
    }
    return sum / n;
  }

  @Test
  void distillationLowersTheHiddenStateMseToTheUncompressedExpert() {
    LanguageModel full = Models.shared(SharedData.model("stories260K"));
    Path pruned = tmp.resolve("p50");
    Compressor.compress(SharedData.model("stories260K"), pruned,
        CompressionLevel.parse("prune:0.5").settings());
    List<int[]> train = new ArrayList<>();
    List<int[]> held = new ArrayList<>();
    String[] texts = {"Lily liked to play with her red ball in the park.",
        "Tom saw a big dog. The dog was happy and wagged its tail.",
        "One day, Sue found a little bird in the garden.",
        "Max and his mom went to the store to buy some milk.",
        "The sun was warm and the sky was blue.", "Ben had a toy car. He played with it.",
        "Once upon a time there was a little girl.", "The cat sat on the mat and slept."};
    for (int i = 0; i < texts.length; i++) {
      (i < 6 ? train : held).add(full.tokenizer().encode(texts[i], true));
    }
    List<TrainingExample> data = new ArrayList<>();
    for (int[] s : train) {
      data.add(TrainingExample.full(new int[] {s[0]}, Arrays.copyOfRange(s, 1, s.length)));
    }
    TrainerConfig tc = new TrainerConfig(5e-3, 8, 3, 0, 0, 1.0, 1, 1, 0,
        TrainerConfig.LossNormaliser.WEIGHT_SUM, 0, 0);
    CaLoraSettings s = new CaLoraSettings(4, RecoveryActivation.SIGMOID, 10, true, tc);
    try (LoraAdapter expert = randomLora(full, 5, 0.05);
        LanguageModel lm = LanguageModel.load(pruned, Device.cpu())) {
      PeftFormat.write(expert, tmp.resolve("src"));
      ModelTeacher teacher = new ModelTeacher(full.model(), expert);
      double before;
      try (CaLoraAdapter start = CaLora.inherit(lm, tmp.resolve("src"), s, 1)) {
        before = hiddenMse(lm, start, full, expert, held);
      }
      double ceOnly;
      double distilled;
      try (CaLoraAdapter a = CaLora.train(lm, tmp.resolve("src"), null, data, s, 1).adapter()) {
        ceOnly = hiddenMse(lm, a, full, expert, held);
      }
      CaLora.Trained t = CaLora.train(lm, tmp.resolve("src"), teacher, data, s, 1);
      try (CaLoraAdapter a = t.adapter()) {
        distilled = hiddenMse(lm, a, full, expert, held);
        assertTrue(t.training().losses().stream().allMatch(Double::isFinite));
      }
      assertTrue(before > 1e-3, "pruning must move the hidden states: " + before);
      assertTrue(distilled < 0.8 * before, "held-out hidden-state MSE " + before + " -> "
          + distilled + " with distillation");
      assertTrue(distilled < ceOnly, "distillation " + distilled + " vs CE only " + ceOnly);
    }
  }

  @Test
  void aBadCompressValueIsRefusedBeforeAnyWork() {
    for (String bad : new String[] {"nf5", "prune:1.5", "prune:x", "int8,int8", ""}) {
      assertThrows(IllegalArgumentException.class, () -> CompressionLevel.parseList(bad), bad);
    }
    assertEquals("prune-75", CompressionLevel.parse("prune:0.75").id());
    assertEquals("prune-50", CompressionLevel.parse("prune").id());
    PrintStream err = System.err;
    ByteArrayOutputStream buf = new ByteArrayOutputStream();
    System.setErr(new PrintStream(buf, true, StandardCharsets.UTF_8));
    int rc;
    try {
      // the model and adapter do not exist either: the level is checked first, nothing loads
      rc = Main.run(new String[] {"ca-lora", "--model", tmp.resolve("none").toString(),
          "--adapter", tmp.resolve("none").toString(), "--compress", "nf4,q3", "--out",
          tmp.resolve("out").toString()});
    } finally {
      System.setErr(err);
    }
    assertEquals(2, rc);
    assertTrue(buf.toString(StandardCharsets.UTF_8).contains("--compress 'q3'"), buf.toString());
    assertFalse(Files.exists(tmp.resolve("out")));
  }

  @Test
  @Tag("slow") // two compressions, six evaluations and four trainings: about a minute
  void theCommandReportsEveryLevelAndSystem() throws Exception {
    Path model = SharedData.model("stories260K");
    LanguageModel lm = Models.shared(model);
    try (LoraAdapter a = randomLora(lm, 9, 0.05)) {
      PeftFormat.write(a, tmp.resolve("expert"));
    }
    Path task = tmp.resolve("t.jsonl");
    StringBuilder sb = new StringBuilder();
    for (int i = 0; i < 10; i++) {
      sb.append("{\"input\": \"True and ").append(i % 2 == 0 ? "True" : "False")
          .append("\", \"target\": \"").append(i % 2 == 0 ? "True" : "False").append("\"}\n");
    }
    Files.writeString(task, sb.toString());
    Path out = tmp.resolve("out");
    String[] args = {"ca-lora", "--model", model.toString(), "--adapter",
        tmp.resolve("expert").toString(), "--compress", "int8,prune:0.5", "--out",
        out.toString(), "--task", task.toString(), "--seeds", "1", "--device", "cpu", "--set",
        "lt.train.epochs=1", "--set", "lt.eval.max-new-tokens=2", "--set",
        "lt.train.checkpoint-every=0"};
    assertEquals(0, Main.run(args));
    JsonNode r = SharedData.json(out.resolve("calora.json"));
    assertEquals(2, r.get("levels").size());
    assertEquals(0, r.get("expert").get("kl_to_expert").asDouble(), 1e-9);
    for (JsonNode lv : r.get("levels")) {
      for (String sys : List.of("vanilla", "inherited", CaLoraJob.CE, CaLoraJob.DISTIL)) {
        assertTrue(lv.has(sys), lv.get("level") + " lacks " + sys);
        assertTrue(Double.isFinite(lv.get(sys).get("kl_to_expert").asDouble()));
      }
      assertTrue(lv.get(CaLoraJob.DISTIL).get("parameters").asLong()
          > lv.get("inherited").get("parameters").asLong());
      String level = lv.get("level").asText();
      assertTrue(CaLoraAdapter.isCaLora(out.resolve(level).resolve(CaLoraJob.DISTIL + "-seed1")));
    }
    // int8 barely moves the weights: the inherited LoRA is closer to the expert than pruned
    assertTrue(r.get("levels").get(0).get("inherited").get("kl_to_expert").asDouble()
        < r.get("levels").get(1).get("inherited").get("kl_to_expert").asDouble());
    assertTrue(Files.readString(out.resolve("calora.md")).contains("LoRA inherited as-is"));
    // a rerun finds every trained run done
    long before = Files.getLastModifiedTime(out.resolve("int8").resolve(CaLoraJob.CE
        + "-seed1.json")).toMillis();
    assertEquals(0, Main.run(args));
    assertEquals(before, Files.getLastModifiedTime(out.resolve("int8").resolve(CaLoraJob.CE
        + "-seed1.json")).toMillis());
  }
}
