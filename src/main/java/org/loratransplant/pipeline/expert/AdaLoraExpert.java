package org.loratransplant.pipeline.expert;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.typesafe.config.Config;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.List;
import org.loratransplant.eval.Reports;
import org.loratransplant.lora.LoraConfig;
import org.loratransplant.lora.adalora.AdaLoraAdapter;
import org.loratransplant.lora.adalora.AdaLoraBudget;
import org.loratransplant.lora.adalora.AdaLoraConfig;
import org.loratransplant.lora.adalora.AdaLoraFormat;
import org.loratransplant.lora.adalora.AdaLoraTrainer;
import org.loratransplant.model.Devices;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.task.TaskPrompts;
import org.loratransplant.train.TrainingExample;

/**
 * {@code jobs/lt train-lora --adalora}: the same job as {@link ExpertTraining} with an AdaLoRA
 * instead of a LoRA. {@code init_r}, alpha, target modules and layers come from {@code lt.lora};
 * dropout and the budget from {@code lt.adalora} (tinit and tfinal as fractions of the run's
 * steps, PEFT's other fields as named). Writes PEFT's AdaLoRA layout. Dropout defaults to 0, as
 * in the measured runs (the NaN first blamed on dropout was strided parameters, since fixed).
 */
public final class AdaLoraExpert {
  private AdaLoraExpert() {}

  public static AdaLoraConfig config(ExpertTraining.Plan plan, int totalSteps) {
    LoraConfig l = plan.lora();
    Config a = plan.experiment().section("adalora");
    return AdaLoraBudget.from(a).config(l, l.r(), a.getInt("target-r"), totalSteps);
  }

  /** Trains and writes the adapter; returns the summary. */
  public static ObjectNode execute(ExpertTraining.Plan plan) {
    try (LanguageModel lm = LanguageModel.load(plan.modelDir(),
        Devices.choose(plan.experiment().device()))) {
      List<TrainingExample> data = TaskPrompts.supervised(plan.split().train(),
          plan.experiment().answerPrompt(), lm.tokenizer(), lm.eosIds()[0],
          plan.experiment().raw().getBoolean("train.prompt-loss"));
      AdaLoraTrainer trainer = new AdaLoraTrainer(plan.trainer());
      AdaLoraConfig ac = config(plan, trainer.steps(data.size()));
      long t0 = System.nanoTime();
      try (AdaLoraAdapter adapter = AdaLoraAdapter.create(ac, lm.config(), lm.model().manager(),
          plan.experiment().seed())) {
        AdaLoraTrainer.Result r = trainer.train(lm, adapter, data);
        ObjectNode s = new ObjectMapper().createObjectNode();
        s.put("config_hash", plan.hash());
        s.put("adapter", "adalora");
        s.put("steps", r.losses().size());
        s.put("first_loss", r.losses().get(0));
        s.put("final_loss", r.losses().get(r.losses().size() - 1));
        s.put("kept_parameters", adapter.keptParameterCount());
        s.put("seconds", (System.nanoTime() - t0) / 1e9);
        s.put("tokens_per_second", 0);
        AdaLoraFormat.write(adapter, plan.out());
        Files.writeString(plan.out().resolve(ExpertTraining.SUMMARY_FILE), Reports.toJson(s),
            StandardCharsets.UTF_8);
        Files.writeString(plan.out().resolve("lt_settings.conf"), plan.settings().render(),
            StandardCharsets.UTF_8);
        return s;
      } catch (IOException e) {
        throw new IllegalStateException("cannot write " + plan.out() + ": " + e.getMessage(), e);
      }
    }
  }
}
