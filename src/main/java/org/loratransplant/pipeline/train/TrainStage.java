package org.loratransplant.pipeline.train;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.pipeline.FaultInjection;
import org.loratransplant.table.Tables;
import org.loratransplant.train.LoraTrainer;
import org.loratransplant.train.TrainingExample;

/**
 * Stage 5: a fresh LoRA on the target, fitted with the settings' objective on the training
 * table. The table holds M rows (the kept samples), so the driver collects it and trains; fitting
 * one small adapter is not a distributed job.
 */
public final class TrainStage {
  private TrainStage() {}

  public record Result(LoraTrainer.Result training, int examples, double keptTokenFraction) {}

  /** The training table as trainer examples, in rank order. */
  public static List<TrainingExample> examples(Dataset<Row> training) {
    Tables.TRAINING.check(training);
    List<TrainingExample> data = new ArrayList<>();
    for (Row r : training.orderBy("rank").collectAsList()) {
      List<Integer> p = r.getList(r.fieldIndex("prompt_ids"));
      List<Integer> y = r.getList(r.fieldIndex("response_ids"));
      List<Float> w = r.getList(r.fieldIndex("weights"));
      float[] wf = new float[w.size()];
      for (int i = 0; i < wf.length; i++) {
        wf[i] = w.get(i);
      }
      data.add(new TrainingExample(p.stream().mapToInt(Integer::intValue).toArray(),
          y.stream().mapToInt(Integer::intValue).toArray(), wf));
    }
    if (data.isEmpty()) {
      throw new IllegalStateException("the training table is empty");
    }
    return data;
  }

  /**
   * Trains a fresh adapter on {@code data} and writes it to {@code adapterOut}, resuming from the
   * newest checkpoint in {@code checkpoints} (null: none) and telling {@code listener} after
   * each step (null: nobody). The caller removes the checkpoints once the adapter is committed.
   */
  public static Result train(List<TrainingExample> data, LanguageModel target, TrainSettings s,
      Path adapterOut, Path checkpoints, LoraTrainer.StepListener listener,
      Map<String, String> extra) {
    double kept = 0;
    long total = 0;
    for (TrainingExample ex : data) {
      for (float w : ex.weights()) {
        kept += w;
      }
      total += ex.weights().length;
    }
    if (s.adalora() != null) {
      return new Result(adaLora(data, target, s, adapterOut, extra), data.size(),
          total == 0 ? 0 : kept / total);
    }
    try (LoraAdapter adapter = LoraAdapter.create(s.lora(), target.config(),
        target.model().manager(), s.seed());
        Objectives.Closeable objective = Objectives.of(s, target)) {
      LoraTrainer.Result r = objective.trainer().listening((done, checkpoint) -> {
        if (listener != null) {
          listener.afterStep(done, checkpoint);
        }
        FaultInjection.afterTrainStep(done);
      }).train(target, adapter, data, checkpoints);
      PeftFormat.write(adapter, adapterOut, extra);
      return new Result(r, data.size(), total == 0 ? 0 : kept / total);
    }
  }

  /**
   * An AdaLoRA trained on {@code data} (masked CE with the examples' weights) and written in
   * PEFT's ADALORA layout. No checkpoints: an interrupted run trains again.
   */
  private static LoraTrainer.Result adaLora(List<TrainingExample> data, LanguageModel target,
      TrainSettings s, Path adapterOut, Map<String, String> extra) {
    long t0 = System.nanoTime();
    org.loratransplant.lora.adalora.AdaLoraTrainer trainer =
        new org.loratransplant.lora.adalora.AdaLoraTrainer(s.trainer());
    int steps = trainer.steps(data.size());
    var config = s.adalora().budget().config(s.lora(), s.adalora().initR(), s.lora().r(), steps);
    try (var adapter = org.loratransplant.lora.adalora.AdaLoraAdapter.create(config,
        target.config(), target.model().manager(), s.seed())) {
      var r = trainer.train(target, adapter, data);
      org.loratransplant.lora.adalora.AdaLoraFormat.write(adapter, adapterOut);
      for (Map.Entry<String, String> e : extra.entrySet()) {
        java.nio.file.Files.writeString(adapterOut.resolve(e.getKey()), e.getValue());
      }
      long tokens = 0;
      for (TrainingExample ex : data) {
        tokens += (long) ex.weights().length * s.trainer().epochs();
      }
      return new LoraTrainer.Result(r.losses(), r.losses().size(), tokens,
          (System.nanoTime() - t0) / 1e9, 0);
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }
}
