package org.loratransplant.pipeline;

import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.lit;

import java.util.List;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Row-level errors. A stage that cannot process one sample (non-finite log-probs, a text too long
 * for a model, an exception of that row alone) records it in the {@code failed} table with the
 * reason and goes on without it; the stage fails only when more than a fraction of its rows
 * ({@code lt.titok.max-failed-fraction}) failed, since then the cause is the run (weights,
 * settings), not a few odd samples.
 *
 * <p>A stage's executor side returns its normal rows with a nullable {@link #ERROR} column:
 * null for a processed row, the reason for a failed one.
 */
public final class FailedRows {
  private static final Logger LOG = LoggerFactory.getLogger(FailedRows.class);
  /** The column of a stage's wide rows that holds a failed row's reason (null when it passed). */
  public static final String ERROR = "error";
  /** Failed sample ids a message names before "...". */
  static final int NAMED = 5;

  private FailedRows() {}

  /** The rows that passed, without the error column. */
  public static Dataset<Row> passed(Dataset<Row> wide) {
    return wide.where(col(ERROR).isNull()).drop(ERROR);
  }

  /** The failed rows as {@code failed} table rows of {@code stage}. */
  public static Dataset<Row> failed(Dataset<Row> wide, String stage) {
    return wide.where(col(ERROR).isNotNull()).select(lit(stage).as("stage"), col("sample_id"),
        col(ERROR).as("reason"), col("query"), col("response"));
  }

  /**
   * Fails the stage when more than {@code maxFraction} of its {@code total} rows failed, saying
   * how many of how many, naming a few ids and their reasons, and pointing at the table; logs a
   * warning when some failed but the stage may go on.
   *
   * @param failedRows the stage's rows of the {@code failed} table
   * @param runDir the directory holding the {@code failed} table (the run's, or a cell's)
   */
  public static void check(String stage, Dataset<Row> failedRows, long total,
      double maxFraction, String runDir) {
    long failed = failedRows.count();
    if (failed == 0) {
      return;
    }
    List<Row> some = failedRows.orderBy("sample_id").select("sample_id", "reason")
        .limit(NAMED).collectAsList();
    String message = message(stage, failed, total, maxFraction, some, runDir);
    if (failed > maxFraction * total) {
      throw new IllegalStateException(message);
    }
    LOG.warn(message);
  }

  static String message(String stage, long failed, long total, double maxFraction,
      List<Row> some, String runDir) {
    boolean fails = failed > maxFraction * total;
    StringBuilder sb = new StringBuilder(stage).append(": ").append(failed).append(" of ")
        .append(total).append(" samples failed (")
        .append(String.format("%.1f%%", 100.0 * failed / Math.max(1, total)))
        .append(fails ? ", more than" : ", within").append(" lt.titok.max-failed-fraction = ")
        .append(String.format("%.1f%%", 100 * maxFraction)).append(")")
        .append(fails ? "" : "; they are left out and the run goes on").append(". Failed: ");
    for (int i = 0; i < some.size(); i++) {
      sb.append(i == 0 ? "" : "; ").append("sample_id ").append(some.get(i).getLong(0))
          .append(" (").append(some.get(i).getString(1)).append(")");
    }
    if (failed > some.size()) {
      sb.append("; ...");
    }
    sb.append(". Every failed row and its reason is in the table failed at ").append(runDir)
        .append("/failed: jobs/lt sql --run ").append(runDir)
        .append(" --query \"SELECT * FROM failed\"");
    return sb.toString();
  }
}
