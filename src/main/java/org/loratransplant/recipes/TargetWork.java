package org.loratransplant.recipes;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.loratransplant.eval.Evaluator;
import org.loratransplant.eval.Reports;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.model.Devices;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.pipeline.ModelDirs;
import org.loratransplant.pipeline.RecipeRunner;
import org.loratransplant.pipeline.StageStore;
import org.loratransplant.pipeline.train.CheckpointDir;
import org.loratransplant.pipeline.train.TrainStage;
import org.loratransplant.pipeline.train.TrainSettings;
import org.loratransplant.task.TaskExample;
import org.loratransplant.train.TrainingExample;

/**
 * The target side of a transplant: fitting the target LoRA and evaluating it. Plain serializable
 * values and no Spark, so the same work runs on the driver ({@code titok}, {@code compare}) or
 * inside a Spark task ({@code fleet}, one task per adapter), committing its outputs to the store
 * it is given.
 *
 * @param train the trainer settings, with the learning rate the run chose
 * @param fullReport evaluate vanilla target, transplanted target and expert side by side instead
 *     of the cell's own system only
 * @param settingsText the run's resolved settings, stored in the adapter
 */
public record TargetWork(String taskName, List<TaskExample> test, List<String> answers,
    String targetModel, String sourceModel, String sourceAdapter, String device, String method,
    TrainSettings train, Evaluator.Settings evaluation, boolean fullReport, String settingsText)
    implements Serializable {
  private static final ObjectMapper JSON = new ObjectMapper();

  public TargetWork {
    test = List.copyOf(test);
    answers = List.copyOf(answers);
  }

  /** Trains a fresh target LoRA on {@code data} and commits it as the store's adapter. */
  public ObjectNode train(StageStore store, String key, List<TrainingExample> data) {
    try (LanguageModel target = LanguageModel.load(ModelDirs.local(targetModel),
        Devices.choose(device))) {
      Path local = Files.createTempDirectory("lt-adapter-").resolve(Transplant.ADAPTER);
      // In the run directory, per run and settings: a killed run resumes from them (on another
      // machine too, for s3a://), and no other run sees them.
      CheckpointDir checkpoints = CheckpointDir.of(store, "train", key);
      checkpoints.prepare();
      TrainStage.Result r = TrainStage.train(data, target, train, local, checkpoints.local(),
          checkpoints.publisher(), Map.of("lt_settings.conf", settingsText));
      store.commitLocalDirectory(local, Transplant.ADAPTER, RecipeRunner.PENDING);
      checkpoints.delete();
      PeftFormat.deleteRecursively(local.getParent());
      ObjectNode st = JSON.createObjectNode();
      st.put("resumed_from_step", r.training().resumedFromStep());
      st.put("examples", r.examples());
      st.put("kept_token_fraction", r.keptTokenFraction());
      st.put("learning_rate", train.trainer().learningRate());
      st.put("steps", r.training().steps());
      st.put("final_loss", r.training().losses().get(r.training().losses().size() - 1));
      st.put("tokens", r.training().tokens());
      // The fit alone: the stage's seconds also count any wait for another training in this JVM.
      st.put("fit_seconds", r.training().seconds());
      return st;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Name of the system a cell's evaluation reports. */
  private String systemName() {
    return Path.of(targetModel).getFileName() + " + " + method;
  }

  /** Evaluates the target with the store's adapter (and, in a full report, vanilla and expert). */
  public ObjectNode evaluate(StageStore store) {
    Evaluator ev = new Evaluator(evaluation);
    List<Evaluator.Report> reports = new ArrayList<>();
    Path adapterDir = store.localCopy(Transplant.ADAPTER);
    try (LanguageModel target = LanguageModel.load(ModelDirs.local(targetModel),
        Devices.choose(device));
        AdapterDir opened = AdapterDir.read(adapterDir, target)) {
      org.loratransplant.model.Adapter a = opened.adapter();
      String name = Path.of(targetModel).getFileName().toString();
      if (fullReport) {
        reports.add(ev.evaluate(name + " (vanilla)", target, null, test, answers));
        reports.add(ev.evaluate(name + " + transplanted LoRA (" + method + ")", target, a,
            test, answers));
      } else {
        reports.add(ev.evaluate(systemName(), target, a, test, answers));
      }
    }
    if (fullReport) {
      reports.add(evaluateExpert(ev));
    }
    return writeEvaluation(store, reports);
  }

  /** The source base with its adapter on the test split. */
  Evaluator.Report evaluateExpert(Evaluator ev) {
    try (LanguageModel source = LanguageModel.load(ModelDirs.local(sourceModel),
        Devices.choose(device));
        LoraAdapter a = PeftFormat.read(ModelDirs.local(sourceAdapter), source.config(),
            source.model().manager())) {
      return ev.evaluate(Path.of(sourceModel).getFileName() + " + source LoRA (expert)",
          source, a, test, answers);
    }
  }

  /** A reference row: the bare target ({@code vanilla}) or the source expert. */
  ObjectNode evaluateReference(StageStore store, String which) {
    Evaluator ev = new Evaluator(evaluation);
    if (which.equals("expert")) {
      return writeEvaluation(store, List.of(evaluateExpert(ev)));
    }
    try (LanguageModel target = LanguageModel.load(ModelDirs.local(targetModel),
        Devices.choose(device))) {
      return writeEvaluation(store, List.of(ev.evaluate(Path.of(targetModel).getFileName()
          + " (vanilla)", target, null, test, answers)));
    }
  }

  private ObjectNode writeEvaluation(StageStore store, List<Evaluator.Report> reports) {
    String md = Reports.markdown(taskName + " (test split)", reports);
    try {
      Path local = Files.createTempDirectory("lt-eval-").resolve(Transplant.EVALUATION);
      Files.createDirectories(local);
      Files.writeString(local.resolve("evaluation.md"), md);
      Files.writeString(local.resolve("evaluation.json"), Reports.toJson(
          Reports.json(taskName, reports, true)));
      store.commitLocalDirectory(local, Transplant.EVALUATION, RecipeRunner.PENDING);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    ObjectNode st = JSON.createObjectNode();
    st.set("report", Reports.json(taskName, reports, false));
    return st;
  }
}
