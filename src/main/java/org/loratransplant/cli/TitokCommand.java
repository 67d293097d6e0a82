package org.loratransplant.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.Map;
import org.apache.spark.sql.SparkSession;
import org.loratransplant.config.Settings;
import org.loratransplant.eval.Reports;
import org.loratransplant.pipeline.ExecutorModels;
import org.loratransplant.recipes.TitokJob;
import org.loratransplant.spark.SparkSessions;

/** {@code jobs/lt titok}: the whole transplant pipeline on Spark. */
public final class TitokCommand implements Command {
  /** Every stage a transplant may have (tune and discriminate only for methods that use them). */
  static final java.util.List<String> STAGES = java.util.List.of("generate", "score",
      "discriminate", "tune", "select", "align", "train", "evaluate");

  @Override
  public String name() {
    return "titok";
  }

  @Override
  public String summary() {
    return "Run the TiTok transplant: generate a synthetic pool with the source expert, score "
        + "every token's contrastive excess, select top-M samples and top-k% tokens, align to the "
        + "target tokenizer, train the target LoRA, evaluate. Complete stages are skipped on a "
        + "rerun with the same settings.";
  }

  @Override
  public int run(String[] args) {
    Options o = new Options(name(), summary())
        .value("until", "STAGE", "stop after this stage (" + String.join(", ", STAGES) + ")",
            "evaluate")
        .value("master", "URL", "Spark master when not under spark-submit", "local[2]")
        .flag("force", "rerun every stage even if its output is complete");
    ConfCli.declare(o);
    if (!o.parse(args)) {
      return 0;
    }
    if (!STAGES.contains(o.get("until"))) {
      // Checked here: the job would find it only after Spark had started.
      throw new UsageException("--until " + o.get("until") + ": no such stage (one of "
          + String.join(", ", STAGES) + ")");
    }
    Settings settings = ConfCli.settings(o);
    try {
      // Everything that needs no Spark is checked before a session starts.
      org.loratransplant.config.Experiment exp = ConfCli.experiment(
          org.loratransplant.recipes.TitokJob.withMethod(settings));
      org.loratransplant.recipes.TitokSettings.from(exp);
      org.loratransplant.recipes.MethodSettings.from(exp);
      exp.trainer();
      exp.evaluation();
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage());
    }
    System.err.println("lt titok: settings from " + settings.source() + ":\n"
        + settings.render());
    SparkSession spark = SparkSessions.getOrCreate("lora-transplant titok", o.get("master"),
        Map.of());
    try {
      TitokJob job;
      try {
        job = new TitokJob(spark, settings, o.has("force"));
      } catch (IllegalArgumentException e) {
        throw new UsageException(e.getMessage());
      }
      ObjectNode summary = job.run(o.get("until"));
      System.err.println("lt titok: summary (also in " + job.store().path("summary.json")
          + "):\n" + Reports.toJson(summary));
      System.err.println("lt titok: model loads in the driver JVM: " + ExecutorModels.loads());
    } finally {
      spark.stop();
    }
    return 0;
  }
}
