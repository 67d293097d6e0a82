package org.loratransplant.migrate;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.typesafe.config.Config;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.loratransplant.config.Experiment;
import org.loratransplant.config.Settings;
import org.loratransplant.eval.Evaluator;
import org.loratransplant.eval.Reports;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.model.Adapter;
import org.loratransplant.model.Devices;
import org.loratransplant.model.GenerationParams;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.task.Split;
import org.loratransplant.task.Task;
import org.loratransplant.task.TaskExample;
import org.loratransplant.task.TaskFiles;
import org.loratransplant.task.TaskPrompts;
import org.loratransplant.train.TrainingExample;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code jobs/lt migrate-layer}: walks an expert LoRA on one layer down to a lower layer and
 * reports, per step, how much of the adapter's effect is kept: the task score on the test split
 * as a fraction of the expert's gain over the base, the mean per-token KL to the expert on the
 * held-out texts (and {@code 1 - KL / KL(expert || base)}), the trainable parameter count and the
 * seconds the step took. Writes each step's adapter ({@code step-<k>-layer-<l>/}, PEFT layout),
 * {@code migration.json} and {@code migration.md}.
 */
public final class MigrationJob {
  private static final Logger LOG = LoggerFactory.getLogger(MigrationJob.class);

  private MigrationJob() {}

  /** The {@code lt.migrate} settings (see conf/base.conf). */
  public static MigrationSettings settings(Experiment exp) {
    Config m = exp.section("migrate");
    try {
      return new MigrationSettings(m.getDouble("mse-weight"), m.getDouble("kl-weight"),
          m.getDouble("kl-temperature"), m.getDouble("ce-weight"), m.getDouble("dropout"),
          exp.trainer());
    } catch (com.typesafe.config.ConfigException | IllegalArgumentException e) {
      throw new IllegalArgumentException("lt.migrate: " + e.getMessage(), e);
    }
  }

  /** Runs the walk; returns the report's JSON. */
  public static ObjectNode run(Path modelDir, Path adapterDir, Integer from, int to, Path out,
      Settings settings) {
    Experiment exp = new Experiment(settings);
    MigrationSettings ms = settings(exp);
    String dataKind = dataKind(exp);
    Task task = TaskFiles.load(exp.taskFile());
    Split split = Split.of(task, exp.testFraction(), exp.splitSeed());
    Evaluator ev = new Evaluator(exp.evaluation());
    ObjectMapper json = new ObjectMapper();
    ObjectNode root = json.createObjectNode();
    ArrayNode rows = root.putArray("rows");
    try (LanguageModel lm = LanguageModel.load(modelDir, Devices.choose(exp.device()));
        LoraAdapter expert = PeftFormat.read(adapterDir, lm.config(), lm.model().manager())) {
      int layer = LayerMigration.onlyLayer(expert);
      if (from != null && from != layer) {
        throw new IllegalArgumentException("--from " + from + " but the adapter is on layer "
            + layer);
      }
      LayerMigration.chain(layer, to, lm.config().numLayers());
      List<int[]> heldOut = texts(lm, exp, split.test());
      List<TrainingExample> data = data(lm, expert, exp, split);
      LOG.info("migrating {} from layer {} to {} on {} {} sequences", expert, layer, to,
          data.size(), dataKind);
      int batch = exp.evaluation().batchSize();
      Evaluator.Report base = ev.evaluate("base", lm, null, split.test(), task.answerSet());
      Evaluator.Report exr = ev.evaluate("expert", lm, expert, split.test(), task.answerSet());
      double klBase = MeanKl.between(lm.model(), expert, null, heldOut, batch);
      Scores ref = new Scores(base, exr, klBase);
      rows.add(row(json, "base", -1, 0, 0, base, klBase, ref, Double.NaN));
      rows.add(row(json, "expert", layer, expert.parameterCount(), 0, exr, 0, ref, Double.NaN));
      int[] k = {0};
      LoraAdapter last = LayerMigration.walk(lm, expert, to, data, ms, exp.seed(), step -> {
        k[0]++;
        Path dir = out.resolve("step-" + k[0] + "-layer-" + step.to());
        PeftFormat.write(step.student(), dir);
        Evaluator.Report r = ev.evaluate("layer " + step.to(), lm, step.student(), split.test(),
            task.answerSet());
        double kl = MeanKl.between(lm.model(), expert, step.student(), heldOut, batch);
        List<Double> losses = step.training().losses();
        rows.add(row(json, "step " + k[0] + ": " + step.from() + " -> " + step.to(), step.to(),
            step.student().parameterCount(), step.seconds(), r, kl, ref,
            losses.isEmpty() ? Double.NaN : losses.get(losses.size() - 1)));
        LOG.info("step {} ({} -> {}): {}", k[0], step.from(), step.to(), rows.get(rows.size() - 1));
      });
      last.close();
    }
    root.put("model", modelDir.toString());
    root.put("adapter", adapterDir.toString());
    root.put("task", exp.taskFile().toString());
    root.put("data", dataKind);
    root.put("objective", "mse " + ms.mseWeight() + " + kl " + ms.klWeight() + " (T="
        + ms.klTemperature() + ") + ce " + ms.ceWeight());
    root.put("trainer", ms.trainer().toString());
    Reports.writeReport(out, "migration", root, markdown(root), settings.render());
    return root;
  }

  /** {@code lt.migrate.data}: {@code task} or {@code synthetic}; other values are refused. */
  public static String dataKind(Experiment exp) {
    String kind = exp.section("migrate").getString("data");
    if (!kind.equals("task") && !kind.equals("synthetic")) {
      throw new IllegalArgumentException("lt.migrate.data must be task or synthetic, got '"
          + kind + "'");
    }
    return kind;
  }

  /**
   * The distillation data of {@code lt.migrate.data}: the training split's texts (prompt +
   * answer) or samples of the expert from BOS.
   */
  public static List<TrainingExample> data(LanguageModel lm, Adapter expert, Experiment exp,
      Split split) {
    Config mc = exp.section("migrate");
    return dataKind(exp).equals("task")
        ? TaskPrompts.supervised(split.train(), exp.answerPrompt(), lm.tokenizer(),
            lm.eosIds()[0], false)
        : synthetic(lm, expert, mc.getInt("synthetic-samples"), mc.getInt("synthetic-tokens"),
            exp.seed());
  }

  private record Scores(Evaluator.Report base, Evaluator.Report expert, double klBase) {}

  /** Rendered test examples (prompt, space, answer) with BOS: the held-out text for KL. */
  public static List<int[]> texts(LanguageModel lm, Experiment exp,
      List<TaskExample> examples) {
    List<int[]> out = new ArrayList<>();
    for (TaskExample ex : examples) {
      out.add(lm.tokenizer().encode(exp.answerPrompt().render(Map.of("input", ex.input()))
          + " " + ex.target().strip(), true));
    }
    return out;
  }

  /** Samples from the expert (temperature 1, from BOS): synthetic text in its distribution. */
  static List<TrainingExample> synthetic(LanguageModel lm, Adapter expert, int n, int tokens,
      long seed) {
    List<int[]> prompts = new ArrayList<>();
    long[] seeds = new long[n];
    for (int i = 0; i < n; i++) {
      prompts.add(new int[] {lm.config().bosTokenId()});
      seeds[i] = seed * 1_000_003L + i;
    }
    List<LanguageModel.Generation> gens = lm.generate(prompts, seeds,
        new GenerationParams(tokens, 1.0, 1.0, lm.eosIds()), expert, 32);
    List<TrainingExample> out = new ArrayList<>();
    for (LanguageModel.Generation g : gens) {
      if (g.tokens().length > 0) {
        out.add(TrainingExample.full(new int[] {lm.config().bosTokenId()}, g.tokens()));
      }
    }
    return out;
  }

  private static ObjectNode row(ObjectMapper json, String system, int layer, long params,
      double seconds, Evaluator.Report r, double kl, Scores ref, double finalLoss) {
    ObjectNode o = json.createObjectNode();
    o.put("system", system);
    if (layer >= 0) {
      o.put("layer", layer);
    }
    o.put("parameters", params);
    o.put("seconds", seconds);
    o.put("exact_match", r.exactMatch().value());
    putKept(o, "exact_match_kept", r.exactMatch().value(), ref.base().exactMatch().value(),
        ref.expert().exactMatch().value(), r.n());
    if (r.choiceAccuracy() != null) {
      o.put("choice_accuracy", r.choiceAccuracy().value());
      putKept(o, "choice_accuracy_kept", r.choiceAccuracy().value(),
          ref.base().choiceAccuracy().value(), ref.expert().choiceAccuracy().value(), r.n());
    }
    o.put("kl_to_expert", kl);
    if (ref.klBase() > 0) {
      o.put("kl_kept", 1 - kl / ref.klBase());
    }
    if (!Double.isNaN(finalLoss)) {
      o.put("final_loss", finalLoss);
    }
    o.put("n", r.n());
    return o;
  }

  /**
   * {@code (score - base) / (expert - base)}; null unless the expert beats the base by more than
   * one example of {@code n} (a smaller gain makes the ratio noise).
   */
  private static void putKept(ObjectNode o, String field, double v, double base, double expert,
      int n) {
    if (expert - base > 1.5 / n) {
      o.put(field, (v - base) / (expert - base));
    } else {
      o.putNull(field);
    }
  }

  static String markdown(ObjectNode root) {
    StringBuilder sb = new StringBuilder("# Layer-wise LoRA migration\n\n");
    sb.append("model `").append(root.get("model").asText()).append("`, adapter `")
        .append(root.get("adapter").asText()).append("`, task `")
        .append(root.get("task").asText()).append("`, data ").append(root.get("data").asText())
        .append(", objective ").append(root.get("objective").asText()).append("\n\n");
    sb.append("| system | layer | params | s | EM | EM kept | choice acc | choice kept "
        + "| KL to expert | KL kept |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for (var r : root.get("rows")) {
      sb.append(String.format("| %s | %s | %d | %.1f | %s | %s | %s | %s | %.4f | %s |%n",
          r.get("system").asText(), r.has("layer") ? r.get("layer").asText() : "-",
          r.get("parameters").asLong(), r.get("seconds").asDouble(),
          num(r, "exact_match"), num(r, "exact_match_kept"), num(r, "choice_accuracy"),
          num(r, "choice_accuracy_kept"), r.get("kl_to_expert").asDouble(), num(r, "kl_kept")));
    }
    sb.append("\nkept = (score - base) / (expert - base); KL kept = 1 - KL(expert || system) / "
        + "KL(expert || base), mean per token over the test split's texts.\n");
    return sb.toString();
  }

  private static String num(com.fasterxml.jackson.databind.JsonNode r, String f) {
    return r.hasNonNull(f) ? String.format("%.3f", r.get(f).asDouble()) : "-";
  }
}
