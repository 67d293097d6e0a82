package org.loratransplant.pipeline.evaluate;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.loratransplant.eval.Evaluator;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.model.Devices;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.pipeline.ModelDirs;
import org.loratransplant.task.Task;
import org.loratransplant.task.TaskExample;

/**
 * Stage 6: the target without an adapter (vanilla), the target with the transplanted adapter,
 * and the source expert for reference, on the task's held-out split.
 */
public final class EvaluateStage {
  private EvaluateStage() {}

  public static List<Evaluator.Report> evaluate(Evaluator.Settings es, Task task,
      List<TaskExample> test, String targetModel, Path adapter, String sourceModel,
      String sourceAdapter, String device) {
    Evaluator ev = new Evaluator(es);
    List<Evaluator.Report> out = new ArrayList<>();
    List<String> answers = task.answerSet();
    try (LanguageModel target = LanguageModel.load(ModelDirs.local(targetModel),
        Devices.choose(device));
        LoraAdapter a = PeftFormat.read(adapter, target.config(), target.model().manager())) {
      String name = Path.of(targetModel).getFileName().toString();
      out.add(ev.evaluate(name + " (vanilla)", target, null, test, answers));
      out.add(ev.evaluate(name + " + transplanted LoRA", target, a, test, answers));
    }
    try (LanguageModel source = LanguageModel.load(ModelDirs.local(sourceModel),
        Devices.choose(device));
        LoraAdapter a = PeftFormat.read(ModelDirs.local(sourceAdapter), source.config(),
            source.model().manager())) {
      out.add(ev.evaluate(Path.of(sourceModel).getFileName() + " + source LoRA (expert)", source,
          a, test, answers));
    }
    return out;
  }
}
