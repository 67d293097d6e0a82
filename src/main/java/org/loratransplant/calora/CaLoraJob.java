package org.loratransplant.calora;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.typesafe.config.Config;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.loratransplant.compress.Compressor;
import org.loratransplant.config.Experiment;
import org.loratransplant.config.Settings;
import org.loratransplant.eval.Evaluator;
import org.loratransplant.eval.Interval;
import org.loratransplant.eval.Reports;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.migrate.MeanKl;
import org.loratransplant.migrate.MigrationJob;
import org.loratransplant.model.Adapter;
import org.loratransplant.model.Devices;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.report.PairedTests;
import org.loratransplant.task.Split;
import org.loratransplant.task.Task;
import org.loratransplant.task.TaskFiles;
import org.loratransplant.task.TaskPrompts;
import org.loratransplant.train.TrainingExample;
import org.loratransplant.train.objective.ModelTeacher;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code jobs/lt ca-lora}: per compression level, the five systems of CA-LoRA's comparison on
 * the task's held-out split, each with exact match (95 % interval) and the mean per-token KL to
 * the uncompressed expert:
 *
 * <ol>
 *   <li>compressed vanilla: the compressed base alone;
 *   <li>inherited as-is: the compressed base with the source LoRA unchanged;
 *   <li>inherit + recovery: LoRA and recovery modules trained on the task CE;
 *   <li>inherit + recovery + distillation: the same plus alpha x hidden-state MSE against the
 *       uncompressed base + LoRA;
 *   <li>the uncompressed expert (the same row for every level).
 * </ol>
 *
 * Trained rows run once per seed; their summary is the mean over seeds with Student's t interval
 * (one seed: the run's Wilson interval), and a McNemar test pools the seeds' items against the
 * inherited adapter. Compressed bases go to {@code out/models/<level>} (reused when present);
 * each trained adapter to {@code out/<level>/<variant>-seed<s>/} with its result beside it
 * ({@code .json}, which makes a rerun skip it); the report to {@code calora.json} and
 * {@code calora.md}.
 */
public final class CaLoraJob {
  private static final Logger LOG = LoggerFactory.getLogger(CaLoraJob.class);
  private static final ObjectMapper JSON = new ObjectMapper();
  static final String CE = "recovery-ce";
  static final String DISTIL = "recovery-distil";

  private CaLoraJob() {}

  /** The {@code lt.calora} settings (see conf/base.conf) with {@code lt.train}. */
  public static CaLoraSettings settings(Experiment exp) {
    Config c = exp.section("calora");
    try {
      String layers = c.getString("mse-layers");
      if (!layers.equals("all") && !layers.equals("last")) {
        throw new IllegalArgumentException("mse-layers must be all or last, got '" + layers
            + "'");
      }
      return new CaLoraSettings(c.getInt("recovery-rank"),
          RecoveryActivation.parse(c.getString("activation")), c.getDouble("mse-weight"),
          layers.equals("all"), exp.trainer());
    } catch (com.typesafe.config.ConfigException | IllegalArgumentException e) {
      throw new IllegalArgumentException("lt.calora: " + e.getMessage(), e);
    }
  }

  /** The seeds of the trained rows (lt.calora.seeds). */
  public static List<Long> seeds(Experiment exp) {
    List<Long> s = exp.section("calora").getLongList("seeds");
    if (s.isEmpty()) {
      throw new IllegalArgumentException("lt.calora.seeds is empty");
    }
    return s;
  }

  /** Runs every level; returns the report's JSON. */
  public static ObjectNode run(Path modelDir, Path adapterDir, List<CompressionLevel> levels,
      Path out, Settings settings) {
    Experiment exp = new Experiment(settings);
    CaLoraSettings cs = settings(exp);
    List<Long> seeds = seeds(exp);
    Task task = TaskFiles.load(exp.taskFile());
    Split split = Split.of(task, exp.testFraction(), exp.splitSeed());
    Evaluator ev = new Evaluator(exp.evaluation());
    int batch = exp.evaluation().batchSize();
    ObjectNode root = JSON.createObjectNode();
    root.put("model", modelDir.toString());
    root.put("adapter", adapterDir.toString());
    root.put("task", exp.taskFile().toString());
    root.put("recovery", "sigma(x D) U, sigma " + cs.activation().id() + ", r_c "
        + cs.recoveryRank());
    root.put("distillation", cs.mseWeight() + " x MSE of " + (cs.allLayers() ? "every layer's"
        : "the last layer's") + " output, every position");
    root.put("trainer", cs.trainer().toString());
    ArrayNode seedArr = root.putArray("seeds");
    seeds.forEach(seedArr::add);
    ArrayNode levelsOut = root.putArray("levels");
    try (LanguageModel full = LanguageModel.load(modelDir, Devices.choose(exp.device()));
        LoraAdapter expert = PeftFormat.read(adapterDir, full.config(),
            full.model().manager())) {
      List<int[]> heldOut = MigrationJob.texts(full, exp, split.test());
      List<TrainingExample> data = TaskPrompts.supervised(split.train(), exp.answerPrompt(),
          full.tokenizer(), full.eosIds()[0], exp.raw().getBoolean("train.prompt-loss"));
      Evaluator.Report exr = ev.evaluate("expert", full, expert, split.test(),
          task.answerSet());
      Evaluator.Report base = ev.evaluate("base", full, null, split.test(), task.answerSet());
      double klBase = MeanKl.between(full.model(), expert, null, heldOut, batch);
      root.set("expert", single(exr, 0, expert.parameterCount()));
      root.set("uncompressed_base", single(base, klBase, 0));
      ModelTeacher teacher = new ModelTeacher(full.model(), expert);
      for (CompressionLevel level : levels) {
        Path modelOut = out.resolve("models").resolve(level.id());
        if (!Files.isRegularFile(modelOut.resolve(Compressor.REPORT_FILE))) {
          LOG.info("compressing {} ({}) -> {}", modelDir, level.id(), modelOut);
          Compressor.compress(modelDir, modelOut, level.settings());
        }
        ObjectNode lv = levelsOut.addObject();
        lv.put("level", level.id());
        try (LanguageModel lm = LanguageModel.load(modelOut, Devices.choose(exp.device()))) {
          Evaluator.Report van = ev.evaluate(level.id() + " vanilla", lm, null, split.test(),
              task.answerSet());
          lv.set("vanilla", single(van, MeanKl.between(full.model(), expert, lm.model(), null,
              heldOut, batch), 0));
          Evaluator.Report inh;
          try (LoraAdapter inherited = PeftFormat.read(adapterDir, lm.config(),
              lm.model().manager())) {
            inh = ev.evaluate(level.id() + " inherited", lm, inherited, split.test(),
                task.answerSet());
            lv.set("inherited", single(inh, MeanKl.between(full.model(), expert, lm.model(),
                inherited, heldOut, batch), inherited.parameterCount()));
          }
          for (String variant : List.of(CE, DISTIL)) {
            List<ObjectNode> runs = new ArrayList<>();
            for (long seed : seeds) {
              runs.add(trained(lm, full, expert, teacher, adapterDir, data, split, task, ev,
                  heldOut, batch, cs, level, variant, seed, out));
            }
            lv.set(variant, summary(runs, inh));
          }
        }
        LOG.info("{}: {}", level.id(), lv);
      }
    }
    write(out, root, settings);
    return root;
  }

  /** One trained run, read back from its result file when a previous run finished it. */
  private static ObjectNode trained(LanguageModel lm, LanguageModel full, LoraAdapter expert,
      ModelTeacher teacher, Path adapterDir, List<TrainingExample> data, Split split, Task task,
      Evaluator ev, List<int[]> heldOut, int batch, CaLoraSettings cs, CompressionLevel level,
      String variant, long seed, Path out) {
    Path dir = out.resolve(level.id()).resolve(variant + "-seed" + seed);
    Path result = out.resolve(level.id()).resolve(variant + "-seed" + seed + ".json");
    String key = cs + " data " + data.size() + " adapter " + adapterDir.toAbsolutePath();
    if (Files.isRegularFile(result) && CaLoraAdapter.isCaLora(dir)) {
      try {
        ObjectNode done = (ObjectNode) JSON.readTree(result.toFile());
        if (key.equals(done.path("settings").asText())) {
          LOG.info("{} {} seed {}: done before ({})", level.id(), variant, seed, result);
          return done;
        }
        LOG.info("{} {} seed {}: {} was made with other settings; training again", level.id(),
            variant, seed, result);
      } catch (IOException e) {
        throw new IllegalStateException("cannot read " + result + ": " + e.getMessage(), e);
      }
    }
    LOG.info("{} {} seed {}: training on {} examples", level.id(), variant, seed, data.size());
    CaLora.Trained t = CaLora.train(lm, adapterDir, variant.equals(DISTIL) ? teacher : null,
        data, cs, seed);
    try (CaLoraAdapter a = t.adapter()) {
      a.write(dir);
      Evaluator.Report r = ev.evaluate(level.id() + " " + variant, lm, a, split.test(),
          task.answerSet());
      ObjectNode o = single(r, MeanKl.between(full.model(), expert, lm.model(), a, heldOut,
          batch), a.parameterCount());
      o.put("seed", seed);
      o.put("seconds", t.seconds());
      o.put("recovery_parameters", a.recovery().parameterCount());
      List<Double> losses = t.training().losses();
      o.put("first_loss", losses.get(0));
      o.put("final_loss", losses.get(losses.size() - 1));
      o.put("settings", key);
      Reports.writeJson(result, o);
      return o;
    }
  }

  /** A system's figures: exact match with its Wilson interval, KL, per-item 0/1 scores. */
  private static ObjectNode single(Evaluator.Report r, double kl, long params) {
    ObjectNode o = JSON.createObjectNode();
    o.put("exact_match", r.exactMatch().value());
    o.put("exact_match_lo", r.exactMatch().lo());
    o.put("exact_match_hi", r.exactMatch().hi());
    o.put("n", r.n());
    o.put("kl_to_expert", kl);
    o.put("parameters", params);
    ArrayNode items = o.putArray("exact");
    r.rows().forEach(row -> items.add(row.exact() ? 1 : 0));
    return o;
  }

  /** Mean over seeds (t interval; one seed: its Wilson), and McNemar against inherited. */
  private static ObjectNode summary(List<ObjectNode> runs, Evaluator.Report inherited) {
    ObjectNode o = JSON.createObjectNode();
    double[] em = runs.stream().mapToDouble(r -> r.get("exact_match").asDouble()).toArray();
    if (runs.size() == 1) {
      o.put("exact_match", em[0]);
      o.put("exact_match_lo", runs.get(0).get("exact_match_lo").asDouble());
      o.put("exact_match_hi", runs.get(0).get("exact_match_hi").asDouble());
    } else {
      Interval t = Interval.mean(em);
      o.put("exact_match", t.value());
      o.put("exact_match_lo", t.lo());
      o.put("exact_match_hi", t.hi());
    }
    o.put("kl_to_expert", runs.stream().mapToDouble(r -> r.get("kl_to_expert").asDouble())
        .average().orElseThrow());
    o.put("parameters", runs.get(0).get("parameters").asLong());
    o.put("seconds", runs.stream().mapToDouble(r -> r.get("seconds").asDouble()).average()
        .orElseThrow());
    List<Double> method = new ArrayList<>();
    List<Double> baseline = new ArrayList<>();
    for (ObjectNode r : runs) {
      int i = 0;
      for (JsonNode x : r.get("exact")) {
        method.add(x.asDouble());
        baseline.add(inherited.rows().get(i++).exact() ? 1.0 : 0.0);
      }
    }
    PairedTests.McNemar m = PairedTests.mcnemar(
        method.stream().mapToDouble(Double::doubleValue).toArray(),
        baseline.stream().mapToDouble(Double::doubleValue).toArray());
    o.put("vs_inherited_b", m.b());
    o.put("vs_inherited_c", m.c());
    o.put("vs_inherited_p", m.p());
    ArrayNode per = o.putArray("runs");
    runs.forEach(r -> {
      ObjectNode c = r.deepCopy();
      c.remove("exact");
      c.remove("settings");
      per.add(c);
    });
    return o;
  }

  private static void write(Path out, ObjectNode root, Settings settings) {
    Reports.writeReport(out, "calora", root, markdown(root), settings.render());
  }

  static String markdown(JsonNode root) {
    StringBuilder sb = new StringBuilder("# CA-LoRA\n\n");
    sb.append("model `").append(root.get("model").asText()).append("`, adapter `")
        .append(root.get("adapter").asText()).append("`, task `")
        .append(root.get("task").asText()).append("`; recovery ")
        .append(root.get("recovery").asText()).append("; distillation ")
        .append(root.get("distillation").asText()).append("; seeds ")
        .append(root.get("seeds").toString()).append("\n\n");
    sb.append("| level | system | params | EM [95 %] | KL to expert | vs inherited (b/c, p) "
        + "| per seed |\n|---|---|---|---|---|---|---|\n");
    Map<String, String> names = new LinkedHashMap<>();
    names.put("vanilla", "compressed vanilla");
    names.put("inherited", "LoRA inherited as-is");
    names.put(CE, "inherit + recovery (CE)");
    names.put(DISTIL, "inherit + recovery + distillation");
    for (JsonNode lv : root.get("levels")) {
      for (Map.Entry<String, String> e : names.entrySet()) {
        JsonNode r = lv.get(e.getKey());
        if (r != null) {
          sb.append(row(lv.get("level").asText(), e.getValue(), r));
        }
      }
    }
    sb.append(row("none", "uncompressed base", root.get("uncompressed_base")));
    sb.append(row("none", "uncompressed expert", root.get("expert")));
    sb.append("\nEM: exact match on the test split (n per run); trained rows: mean over seeds "
        + "with Student's t 95 % interval (one seed: Wilson). KL: mean per-token "
        + "KL(expert || system) over the test texts. b/c: items only the row / only the "
        + "inherited adapter got right, pooled over seeds; p: exact McNemar.\n");
    return sb.toString();
  }

  private static String row(String level, String system, JsonNode r) {
    String vs = r.has("vs_inherited_p") ? String.format("%d/%d, %.3f",
        r.get("vs_inherited_b").asInt(), r.get("vs_inherited_c").asInt(),
        r.get("vs_inherited_p").asDouble()) : "-";
    StringBuilder per = new StringBuilder();
    if (r.has("runs")) {
      for (JsonNode x : r.get("runs")) {
        per.append(per.length() == 0 ? "" : ", ")
            .append(String.format("%.2f", x.get("exact_match").asDouble()));
      }
    }
    return String.format("| %s | %s | %d | %.3f [%.3f, %.3f] | %.4f | %s | %s |%n", level, system,
        r.get("parameters").asLong(), r.get("exact_match").asDouble(),
        r.get("exact_match_lo").asDouble(), r.get("exact_match_hi").asDouble(),
        r.get("kl_to_expert").asDouble(), vs, per.length() == 0 ? "-" : per);
  }
}
