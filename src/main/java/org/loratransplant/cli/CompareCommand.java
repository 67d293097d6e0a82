package org.loratransplant.cli;

import java.util.Map;
import org.apache.spark.sql.SparkSession;
import org.loratransplant.config.Settings;
import org.loratransplant.recipes.CompareJob;
import org.loratransplant.spark.SparkSessions;

/** {@code jobs/lt compare}: methods x tasks x targets x seeds, one report. */
public final class CompareCommand implements Command {
  @Override
  public String name() {
    return "compare";
  }

  @Override
  public String summary() {
    return "Compare transfer methods (lt.compare.methods, presets in lt.methods) over tasks, "
        + "target models and seeds in one job: each task's pool is generated and scored once and "
        + "shared; each cell resumes on its own. Writes results (Parquet), results.json, "
        + "report.md (means over seeds with 95% intervals, paired tests against vanilla and "
        + "between named pairs) and a plot per main metric, and prints the report.";
  }

  @Override
  public int run(String[] args) {
    Options o = new Options(name(), summary())
        .value("master", "URL", "Spark master when not under spark-submit", "local[2]")
        .flag("force", "rerun every stage of every cell even if its output is complete");
    ConfCli.declare(o);
    if (!o.parse(args)) {
      return 0;
    }
    Settings settings = ConfCli.settings(o);
    System.err.println("lt compare: settings from " + settings.source());
    SparkSession spark = SparkSessions.getOrCreate("lora-transplant compare", o.get("master"),
        Map.of());
    try {
      CompareJob job;
      try {
        job = new CompareJob(spark, settings, o.has("force"));
      } catch (IllegalArgumentException e) {
        throw new UsageException(e.getMessage());
      }
      System.out.println(job.run());
      System.err.println("lt compare: report in " + job.store().path("report.md"));
    } finally {
      spark.stop();
    }
    return 0;
  }
}
