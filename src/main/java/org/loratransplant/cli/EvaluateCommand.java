package org.loratransplant.cli;

import java.nio.file.Path;
import java.util.List;
import org.loratransplant.config.Experiment;
import org.loratransplant.config.Settings;
import org.loratransplant.eval.Evaluator;
import org.loratransplant.eval.Reports;
import org.loratransplant.task.Split;
import org.loratransplant.task.Task;
import org.loratransplant.task.TaskExample;
import org.loratransplant.task.TaskFiles;

/** {@code jobs/lt evaluate}: scores a model, with or without an adapter, on a task's test split. */
public final class EvaluateCommand implements Command {
  @Override
  public String name() {
    return "evaluate";
  }

  @Override
  public String summary() {
    return "Score a model (with --adapter, or without) on a task's held-out split: exact match of "
        + "the greedy answer, log-likelihood choice accuracy for closed answer sets, ROUGE-1/L F; "
        + "each with n and a 95% interval. Prints a table and writes JSON.";
  }

  @Override
  public int run(String[] args) {
    Options o = new Options(name(), summary())
        .value("model", "DIR", "model directory", null)
        .value("task", "FILE", "task file (overrides lt.task.file)", null)
        .value("split", "NAME", "test or train", "test")
        .value("limit", "N", "evaluate only the first N examples", null)
        .value("label", "NAME", "name of the system in the report", null)
        .value("out", "FILE", "write the report as JSON here", null);
    ModelCli.declare(o);
    ConfCli.declare(o);
    if (!o.parse(args)) {
      return 0;
    }
    if (o.has("out")) {
      checkWritable(Path.of(o.get("out")));
    }
    Settings settings = ConfCli.settings(o, "lt.task.file", o.get("task"));
    Experiment exp = ConfCli.experiment(settings);
    Evaluator.Settings es = exp.evaluation();
    Task task = TaskFiles.load(exp.taskFile());
    Split split = Split.of(task, exp.testFraction(), exp.splitSeed());
    List<TaskExample> examples = switch (o.get("split")) {
      case "test" -> split.test();
      case "train" -> split.train();
      default -> throw new UsageException("--split must be test or train");
    };
    if (o.has("limit")) {
      examples = examples.subList(0, Math.min(examples.size(), o.integer("limit")));
    }
    String label = o.get("label") != null ? o.get("label")
        : Path.of(o.required("model")).getFileName()
            + (o.has("adapter") ? " + " + Path.of(o.get("adapter")).getFileName() : "");
    try (ModelCli.Loaded m = ModelCli.load(o)) {
      Evaluator.Report r = new Evaluator(es).evaluate(label, m.model(), m.adapter(), examples,
          task.answerSet());
      System.out.println(Reports.markdown(task.name() + " (" + o.get("split") + " split)",
          List.of(r)));
      if (o.has("out")) {
        Reports.writeJson(Path.of(o.get("out")), Reports.json(task.name(), List.of(r), true));
      }
    }
    return 0;
  }

  /**
   * Refuses an {@code --out} that could not be written, before the evaluation (minutes) runs:
   * the file must not be a directory, and its nearest existing ancestor must be a directory in
   * which a file can be created (tried: permission bits say nothing for root or a read-only
   * mount).
   */
  static void checkWritable(Path out) {
    Path abs = out.toAbsolutePath();
    if (java.nio.file.Files.isDirectory(abs)) {
      throw new UsageException("--out " + out + " is a directory; give a file name");
    }
    Path dir = abs.getParent();
    while (dir != null && !java.nio.file.Files.exists(dir)) {
      dir = dir.getParent();
    }
    if (dir == null || !java.nio.file.Files.isDirectory(dir)) {
      throw new UsageException("--out " + out + ": cannot be created (" + dir
          + " is not a directory)");
    }
    try {
      java.nio.file.Files.delete(java.nio.file.Files.createTempFile(dir, ".lt-write-probe",
          ".tmp"));
    } catch (java.io.IOException | SecurityException e) {
      throw new UsageException("--out " + out + ": " + dir + " is not writable (" + e + ")");
    }
  }
}
