package org.loratransplant.cli;

import java.util.Map;
import org.apache.spark.sql.SparkSession;
import org.loratransplant.pipeline.StageStore;
import org.loratransplant.spark.SparkSessions;
import org.loratransplant.table.Tables;

/** {@code jobs/lt sql}: Spark SQL over a run's tables, registered as views by their names. */
public final class SqlCommand implements Command {
  @Override
  public String name() {
    return "sql";
  }

  @Override
  public String summary() {
    return "Query a run's Parquet tables with Spark SQL. Views: pool, dropped, scored_samples, "
        + "scored_tokens, selected, training, failed (rows a stage left out, and why).";
  }

  @Override
  public int run(String[] args) {
    Options o = new Options(name(), summary())
        .value("run", "DIR", "the run directory (lt.titok.out), local or s3a://", null)
        .value("query", "SQL", "the query to run", null)
        .value("rows", "N", "rows to show", "20")
        .value("master", "URL", "Spark master when not under spark-submit", "local[2]");
    if (!o.parse(args)) {
      return 0;
    }
    SparkSession spark = SparkSessions.getOrCreate("lora-transplant sql", o.get("master"),
        Map.of());
    try {
      StageStore store = new StageStore(spark, o.required("run"));
      int views = 0;
      for (Tables t : Tables.values()) {
        if (store.has(t)) {
          store.read(t).createOrReplaceTempView(t.tableName());
          views++;
        }
      }
      if (views == 0) {
        throw new UsageException(o.get("run") + " holds no complete table");
      }
      spark.sql(o.required("query")).show(o.integer("rows"), false);
    } finally {
      spark.stop();
    }
    return 0;
  }
}
