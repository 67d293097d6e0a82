package org.loratransplant.table;

import static org.apache.spark.sql.types.DataTypes.DoubleType;
import static org.apache.spark.sql.types.DataTypes.FloatType;
import static org.apache.spark.sql.types.DataTypes.IntegerType;
import static org.apache.spark.sql.types.DataTypes.LongType;
import static org.apache.spark.sql.types.DataTypes.StringType;
import static org.apache.spark.sql.types.DataTypes.createArrayType;
import static org.apache.spark.sql.types.DataTypes.createMapType;
import static org.apache.spark.sql.types.DataTypes.createStructField;
import static org.apache.spark.sql.types.DataTypes.createStructType;

import java.util.Arrays;
import java.util.List;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

/**
 * The one place every Parquet table of a TiTok run is declared: its name (the directory under the
 * run and the Spark SQL view) and its schema. Stages check their input against these before doing
 * work and write exactly these columns.
 */
public enum Tables {
  /** generate: the synthetic pool after de-duplication. */
  POOL("pool", createStructType(new StructField[] {
      createStructField("sample_id", LongType, false),
      createStructField("query", StringType, false),
      createStructField("response", StringType, false),
      createStructField("query_finish", StringType, false),
      createStructField("response_finish", StringType, false)})),
  /** generate: near-duplicates that were dropped, and why. */
  DROPPED("dropped", createStructType(new StructField[] {
      createStructField("sample_id", LongType, false),
      createStructField("query", StringType, false),
      createStructField("reason", StringType, false),
      createStructField("duplicate_of", LongType, false),
      createStructField("rouge_l", DoubleType, false)})),
  /** score: one row per pool sample, with its response tokens and their scores as arrays. */
  SCORED_SAMPLES("scored_samples", createStructType(new StructField[] {
      createStructField("sample_id", LongType, false),
      createStructField("query", StringType, false),
      createStructField("response", StringType, false),
      createStructField("prompt_ids", createArrayType(IntegerType, false), false),
      createStructField("token_ids", createArrayType(IntegerType, false), false),
      createStructField("logp_expert", createArrayType(FloatType, false), false),
      createStructField("logp_amateur", createArrayType(FloatType, false), false),
      createStructField("n_tokens", IntegerType, false),
      createStructField("mean_excess", DoubleType, false),
      createStructField("sum_excess", DoubleType, false)})),
  /** score: one row per response token. */
  SCORED_TOKENS("scored_tokens", createStructType(new StructField[] {
      createStructField("sample_id", LongType, false),
      createStructField("position", IntegerType, false),
      createStructField("token_id", IntegerType, false),
      createStructField("token_text", StringType, false),
      createStructField("char_start", IntegerType, false),
      createStructField("char_end", IntegerType, false),
      createStructField("logp_expert", FloatType, false),
      createStructField("logp_amateur", FloatType, false),
      createStructField("excess", FloatType, false),
      createStructField("bucket", IntegerType, false)})),
  /** select: the kept samples with their source-side token mask. */
  SELECTED("selected", createStructType(new StructField[] {
      createStructField("sample_id", LongType, false),
      createStructField("rank", IntegerType, false),
      createStructField("query", StringType, false),
      createStructField("response", StringType, false),
      createStructField("prompt_ids", createArrayType(IntegerType, false), false),
      createStructField("token_ids", createArrayType(IntegerType, false), false),
      createStructField("excess", createArrayType(FloatType, false), false),
      createStructField("mask", createArrayType(FloatType, false), false),
      createStructField("mean_excess", DoubleType, false)})),
  /** align: the training table in target token ids with per-token weights. */
  TRAINING("training", createStructType(new StructField[] {
      createStructField("sample_id", LongType, false),
      createStructField("rank", IntegerType, false),
      createStructField("prompt_ids", createArrayType(IntegerType, false), false),
      createStructField("response_ids", createArrayType(IntegerType, false), false),
      createStructField("weights", createArrayType(FloatType, false), false),
      createStructField("matched_spans", IntegerType, false),
      createStructField("unmatched_tokens", IntegerType, false)})),
  /**
   * score, align: the samples a stage could not process, and why (non-finite log-probs, too
   * long for a model, an exception of that row alone). They are left out of the stage's other
   * outputs; the job fails only when more than {@code lt.titok.max-failed-fraction} of a stage's
   * rows fail. Each stage owns one partition ({@code failed/stage=score}), so one directory
   * reads as one table.
   */
  FAILED("failed", createStructType(new StructField[] {
      createStructField("stage", StringType, false),
      createStructField("sample_id", LongType, false),
      createStructField("reason", StringType, false),
      createStructField("query", StringType, false),
      createStructField("response", StringType, false)}), "stage"),
  /** compare: one row per (task, source, target, method, seed, metric) on the test split. */
  RESULTS("results", createStructType(new StructField[] {
      createStructField("task", StringType, false),
      createStructField("source", StringType, false),
      createStructField("target", StringType, false),
      createStructField("method", StringType, false),
      createStructField("seed", IntegerType, false),
      createStructField("metric", StringType, false),
      createStructField("value", DoubleType, false),
      createStructField("ci_low", DoubleType, false),
      createStructField("ci_high", DoubleType, false),
      createStructField("n", IntegerType, false)})),
  /**
   * fleet: one row per adapter migrated to the target. {@code vanilla}, {@code transplanted} and
   * {@code expert} hold each system's test-split scores with 95% intervals (null for a failed
   * adapter; choice accuracy null without a closed answer set); {@code exact_match_gain} is
   * transplanted minus vanilla with a paired-bootstrap interval and p value; seconds are per
   * stage of the run that did the work; {@code stages_run} the stages this invocation ran
   * ({@code []}: resumed whole); {@code executor} where the target side (train, evaluate) ran.
   */
  FLEET_REPORT("fleet_report", createStructType(new StructField[] {
      createStructField("adapter", StringType, false),
      createStructField("task", StringType, true),
      createStructField("source_model", StringType, false),
      createStructField("target", StringType, false),
      createStructField("method", StringType, false),
      createStructField("status", StringType, false),
      createStructField("error", StringType, true),
      createStructField("n", IntegerType, true),
      createStructField("vanilla", Scores.SYSTEM, true),
      createStructField("transplanted", Scores.SYSTEM, true),
      createStructField("expert", Scores.SYSTEM, true),
      createStructField("exact_match_gain", Scores.GAIN, true),
      createStructField("stage_seconds", createMapType(StringType, DoubleType, false), false),
      createStructField("wall_seconds", DoubleType, false),
      createStructField("stages_run", createArrayType(StringType, false), false),
      createStructField("executor", StringType, true)}));

  /** The nested types of {@link #FLEET_REPORT}. */
  public static final class Scores {
    private Scores() {}

    /** A metric's value with its 95% interval. */
    public static final StructType METRIC = createStructType(new StructField[] {
        createStructField("value", DoubleType, false),
        createStructField("ci_low", DoubleType, false),
        createStructField("ci_high", DoubleType, false)});
    /** One system's metrics, as Transplant's evaluation reports them. */
    public static final StructType SYSTEM = createStructType(new StructField[] {
        createStructField("exact_match", METRIC, false),
        createStructField("choice_accuracy", METRIC, true),
        createStructField("rouge1", METRIC, false),
        createStructField("rougeL", METRIC, false)});
    /** A paired difference: mean, 95% bootstrap interval, two-sided p. */
    public static final StructType GAIN = createStructType(new StructField[] {
        createStructField("value", DoubleType, false),
        createStructField("ci_low", DoubleType, false),
        createStructField("ci_high", DoubleType, false),
        createStructField("p", DoubleType, false)});
  }

  private final String tableName;
  private final StructType schema;
  private final String partitionColumn;

  Tables(String tableName, StructType schema) {
    this(tableName, schema, null);
  }

  Tables(String tableName, StructType schema, String partitionColumn) {
    this.tableName = tableName;
    this.schema = schema;
    this.partitionColumn = partitionColumn;
  }

  /** An int array as a Row value of an {@code array<int>} column. */
  public static Integer[] ints(int[] a) {
    Integer[] o = new Integer[a.length];
    for (int i = 0; i < a.length; i++) {
      o[i] = a[i];
    }
    return o;
  }

  /** A float array as a Row value of an {@code array<float>} column. */
  public static Float[] floats(float[] a) {
    Float[] o = new Float[a.length];
    for (int i = 0; i < a.length; i++) {
      o[i] = a[i];
    }
    return o;
  }

  /** Directory name under the run directory and Spark SQL view name. */
  public String tableName() {
    return tableName;
  }

  public StructType schema() {
    return schema;
  }

  /**
   * The column whose values name the table's sub-directories ({@code column=value}), each
   * written and marked complete by its own stage; null for a table written whole.
   */
  public String partitionColumn() {
    return partitionColumn;
  }

  /**
   * Fails unless {@code df} has every column of this table with the declared type (extra
   * columns are allowed), naming the table and the column.
   */
  public void check(Dataset<Row> df) {
    List<StructField> have = Arrays.asList(df.schema().fields());
    for (StructField want : schema.fields()) {
      StructField got = have.stream().filter(f -> f.name().equals(want.name())).findFirst()
          .orElseThrow(() -> new IllegalStateException("table " + tableName + ": column '"
              + want.name() + "' is missing (have " + df.schema().simpleString() + ")"));
      if (!got.dataType().sameType(want.dataType())) {
        throw new IllegalStateException("table " + tableName + ": column '" + want.name()
            + "' is " + got.dataType().simpleString() + ", expected "
            + want.dataType().simpleString());
      }
    }
  }
}
