package org.loratransplant.cli;

import java.nio.file.Path;
import java.util.Map;
import org.apache.spark.sql.SparkSession;
import org.loratransplant.config.Settings;
import org.loratransplant.recipes.FleetJob;
import org.loratransplant.spark.SparkSessions;

/** {@code jobs/lt fleet}: many adapters migrated to one new target base in one job. */
public final class FleetCommand implements Command {
  @Override
  public String name() {
    return "fleet";
  }

  @Override
  public String summary() {
    return "Migrate a fleet of PEFT adapters (listed in DIR/fleet.conf or fleet.json) to one new "
        + "target base in one job, each with the transplant recipe in its own run directory: "
        + "generation and scoring fan out over executors, each adapter's target LoRA is trained "
        + "and evaluated in a Spark task of its own. A broken adapter is recorded as failed and "
        + "the rest go on; a rerun skips finished adapters and retries failed ones. Writes "
        + "fleet_report (Parquet), fleet_report.json and fleet_report.md and prints the report; "
        + "exits 1 when every adapter fails or more than lt.fleet.max-failed-fraction do.";
  }

  @Override
  public int run(String[] args) {
    Options o = new Options(name(), summary())
        .value("adapters", "DIR", "the adapters and their manifest (fleet.conf or fleet.json)",
            null)
        .value("target-model", "DIR", "the new base every adapter moves to (a local "
            + "directory, or s3a://...: fetched once into the model cache)", null)
        .value("out", "DIR", "run directory (default lt.fleet.out)", null)
        .value("method", "PRESET", "method preset of lt.methods (default lt.titok.method); an "
            + "entry's 'method' overrides it", null)
        .value("master", "URL", "Spark master when not under spark-submit", "local[2]")
        .flag("force", "redo every stage of every adapter even if its output is complete");
    ConfCli.declare(o);
    if (!o.parse(args)) {
      return 0;
    }
    Settings settings = ConfCli.settings(o);
    FleetJob.Plan plan;
    try {
      // The manifest, the target and the conf are checked before a session starts.
      plan = FleetJob.Plan.of(settings, Path.of(o.required("adapters")),
          o.required("target-model"), o.get("out"), o.get("method"));
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage());
    }
    System.err.println("lt fleet: " + plan.manifest().entries().size() + " adapters from "
        + plan.manifest().file() + " -> " + plan.target() + " (method " + plan.method()
        + "), settings from " + settings.source() + ", run directory " + plan.out());
    SparkSession spark = SparkSessions.getOrCreate("lora-transplant fleet", o.get("master"),
        Map.of());
    FleetJob.Result r;
    FleetJob job = new FleetJob(spark, plan, o.has("force"));
    try {
      r = job.run();
    } finally {
      spark.stop();
    }
    System.out.println(r.markdown());
    System.err.println("lt fleet: report in " + job.store().path("fleet_report.md"));
    if (r.fails()) {
      System.err.println("lt fleet: " + r.failed() + " of " + (r.ok() + r.failed())
          + " adapters failed (more than lt.fleet.max-failed-fraction = "
          + plan.maxFailedFraction() + ", or all): exit 1");
      return 1;
    }
    return 0;
  }
}
