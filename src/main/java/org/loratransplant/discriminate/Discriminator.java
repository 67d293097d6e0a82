package org.loratransplant.discriminate;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.LoraConfig;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.model.Projection;
import org.loratransplant.task.PromptTemplate;
import org.loratransplant.tokenizer.TextTokenizer;
import org.loratransplant.train.LoraTrainer;
import org.loratransplant.train.TrainerConfig;
import org.loratransplant.train.TrainingExample;

/**
 * TransLoRA's discriminator in language-model form: a LoRA on a base model that, given a row
 * rendered by the prompt template, answers with the real or the synthetic label. Its score is
 * {@code log P(real label | prompt) - log P(synthetic label | prompt)}, teacher-forced and summed
 * over each label's pieces, so 0 means even odds and the score is comparable across rows.
 *
 * <p>The score is absolute, not relative to the base: an untrained discriminator (B = 0) scores
 * each row with the base model's own preference between the two label words, which varies with
 * the row's text but carries no training signal.
 *
 * <p>Labels are tokenised in context (the prompt plus the label, minus the prompt's pieces),
 * because tok512 prepends a space piece to standalone text: {@code " real"} alone encodes as
 * {@code ▁ ▁ re a l} but after the prompt as {@code ▁ re a l}, {@code " synthetic"} alone as
 * {@code ▁ ▁s y nt he t i c} but after the prompt as {@code ▁s y nt he t i c}.
 */
public final class Discriminator implements AutoCloseable {
  /** The extra file in the adapter directory that holds the settings. */
  public static final String SETTINGS_FILE = "lt_discriminator.json";
  private static final int SCORE_BATCH = 32;
  private static final ObjectMapper JSON = new ObjectMapper();

  private final LanguageModel base;
  private final LoraAdapter adapter;
  private final DiscriminatorSettings settings;
  private final PromptTemplate template;
  private final List<Double> losses;

  private Discriminator(LanguageModel base, LoraAdapter adapter, DiscriminatorSettings settings,
      List<Double> losses) {
    this.base = base;
    this.adapter = adapter;
    this.settings = settings;
    this.template = settings.template();
    this.losses = List.copyOf(losses);
  }

  /** A fresh LoRA (B = 0): the base model answering the question as it is. */
  public static Discriminator untrained(LanguageModel base, DiscriminatorSettings s) {
    LoraConfig lc = new LoraConfig(s.rank(), s.alpha(), 0.0,
        EnumSet.of(Projection.Q_PROJ, Projection.V_PROJ), List.of(), false,
        base.model().directory().toString());
    LoraAdapter a = LoraAdapter.create(lc, base.config(), base.model().manager(), s.seed());
    Discriminator d = new Discriminator(base, a, s, List.of());
    try {
      d.encode(new Labelled(0, "probe", "probe")); // label checks before any work
    } catch (RuntimeException e) {
      a.close();
      throw e;
    }
    return d;
  }

  /**
   * Trains a discriminator on real rows (label real) and synthetic rows (label synthetic). The
   * smaller class is repeated cyclically up to the larger one's size so both weigh the same in
   * the loss; the loss covers the label pieces only. The trainer runs with weight decay 0.01,
   * 10% linear warm-up (its first step at rate 0, as Hugging Face's schedule) and gradient
   * clipping at 1.0; rank, alpha, rate, epochs, batch size and seed come from the settings.
   */
  public static Discriminator fit(LanguageModel base, List<Labelled> real,
      List<Labelled> synthetic, DiscriminatorSettings s) {
    if (real.isEmpty() || synthetic.isEmpty()) {
      throw new IllegalArgumentException("the discriminator needs real and synthetic rows (got "
          + real.size() + " real, " + synthetic.size() + " synthetic)");
    }
    Discriminator d = untrained(base, s);
    try {
      int n = Math.max(real.size(), synthetic.size());
      List<TrainingExample> data = new ArrayList<>(2 * n);
      for (int i = 0; i < n; i++) {
        Encoded e = d.encode(real.get(i % real.size()));
        data.add(TrainingExample.full(e.prompt(), e.real()));
      }
      for (int i = 0; i < n; i++) {
        Encoded e = d.encode(synthetic.get(i % synthetic.size()));
        data.add(TrainingExample.full(e.prompt(), e.synthetic()));
      }
      TrainerConfig tc = new TrainerConfig(s.learningRate(), s.epochs(), s.batchSize(), 0.01,
          0.1, 1.0, 1, s.seed(), 0, TrainerConfig.LossNormaliser.WEIGHT_SUM, 0, 0);
      LoraTrainer.Result r = new LoraTrainer(tc).train(base, d.adapter, data, null);
      return new Discriminator(base, d.adapter, s, r.losses());
    } catch (RuntimeException e) {
      d.close();
      throw e;
    }
  }

  /** {@code log P(real) - log P(synthetic)} for each row, in order. */
  public double[] score(List<Labelled> rows) {
    List<int[]> prompts = new ArrayList<>(2 * rows.size());
    List<int[]> responses = new ArrayList<>(2 * rows.size());
    for (Labelled row : rows) {
      Encoded e = encode(row);
      prompts.add(e.prompt());
      responses.add(e.real());
      prompts.add(e.prompt());
      responses.add(e.synthetic());
    }
    List<float[]> lp = base.logprobs(prompts, responses, adapter, SCORE_BATCH);
    double[] out = new double[rows.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = sum(lp.get(2 * i)) - sum(lp.get(2 * i + 1));
    }
    return out;
  }

  /** Scores the rows and keeps those the settings' filter keeps, in input order. */
  public List<Scored> filter(List<Labelled> rows) {
    return settings.filter().apply(Scored.of(rows, score(rows)));
  }

  /** The row as the model sees it: prompt ids (with BOS) and each label's ids in context. */
  public record Encoded(int[] prompt, int[] real, int[] synthetic) {}

  /**
   * Renders and tokenises a row. A prompt too long for the model keeps BOS and its last pieces
   * (the question and the answer sit at the end), so any row can be scored.
   */
  public Encoded encode(Labelled row) {
    TextTokenizer tok = base.tokenizer();
    String text = template.render(Map.of("query", row.query(), "answer", row.answer()));
    int[] prompt = tok.encode(text, true);
    int[] real = labelIds(tok, text, prompt, settings.realLabel(), "real-label", row);
    int[] synthetic = labelIds(tok, text, prompt, settings.syntheticLabel(), "synthetic-label",
        row);
    if (Arrays.equals(real, synthetic)) {
      throw new IllegalArgumentException(DiscriminatorSettings.KEY_PREFIX + "real-label and "
          + "synthetic-label tokenise the same: " + Arrays.toString(real));
    }
    int room = base.config().maxPositions() - Math.max(real.length, synthetic.length);
    if (prompt.length > room) {
      int[] cut = new int[room];
      cut[0] = prompt[0];
      System.arraycopy(prompt, prompt.length - (room - 1), cut, 1, room - 1);
      prompt = cut;
    }
    return new Encoded(prompt, real, synthetic);
  }

  private static int[] labelIds(TextTokenizer tok, String text, int[] prompt, String label,
      String key, Labelled row) {
    int[] full = tok.encode(text + label, true);
    if (full.length <= prompt.length
        || !Arrays.equals(prompt, Arrays.copyOf(full, prompt.length))) {
      throw new IllegalArgumentException("row " + row.id() + ": " + DiscriminatorSettings.KEY_PREFIX
          + key + " '" + label + "' merges with the end of the prompt into other pieces; end "
          + "prompt-template on punctuation or start the label with a space");
    }
    return Arrays.copyOfRange(full, prompt.length, full.length);
  }

  private static double sum(float[] a) {
    double s = 0;
    for (float v : a) {
      s += v;
    }
    return s;
  }

  /** Writes the adapter as PEFT plus {@value #SETTINGS_FILE}, atomically. */
  public void save(Path dir) {
    ObjectNode n = JSON.createObjectNode();
    n.put("rank", settings.rank());
    n.put("alpha", settings.alpha());
    n.put("learning_rate", settings.learningRate());
    n.put("epochs", settings.epochs());
    n.put("batch_size", settings.batchSize());
    n.put("prompt_template", settings.promptTemplate());
    n.put("real_label", settings.realLabel());
    n.put("synthetic_label", settings.syntheticLabel());
    if (settings.filter() instanceof Filter.TopFraction f) {
      n.put("keep_fraction", f.fraction());
    } else if (settings.filter() instanceof Filter.Threshold t) {
      n.put("threshold", t.minScore());
    }
    n.put("seed", settings.seed());
    n.set("losses", JSON.valueToTree(losses));
    try {
      PeftFormat.write(adapter, dir, Map.of(SETTINGS_FILE,
          JSON.writerWithDefaultPrettyPrinter().writeValueAsString(n) + "\n"));
    } catch (IOException e) {
      throw new IllegalStateException("cannot write " + dir + ": " + e.getMessage(), e);
    }
  }

  /** Loads a discriminator written by {@link #save} for {@code base}. */
  public static Discriminator load(LanguageModel base, Path dir) {
    Path file = dir.resolve(SETTINGS_FILE);
    if (!Files.isRegularFile(file)) {
      throw new IllegalArgumentException(dir + " is not a saved discriminator: " + SETTINGS_FILE
          + " is missing");
    }
    DiscriminatorSettings s;
    List<Double> losses = new ArrayList<>();
    try {
      JsonNode n = JSON.readTree(file.toFile());
      Filter f = n.has("keep_fraction") ? new Filter.TopFraction(n.get("keep_fraction").asDouble())
          : new Filter.Threshold(n.path("threshold").asDouble(Double.NaN));
      s = new DiscriminatorSettings(n.path("rank").asInt(), n.path("alpha").asDouble(),
          n.path("learning_rate").asDouble(), n.path("epochs").asInt(),
          n.path("batch_size").asInt(), n.path("prompt_template").asText(null),
          n.path("real_label").asText(null), n.path("synthetic_label").asText(null), f,
          n.path("seed").asLong());
      n.path("losses").forEach(v -> losses.add(v.asDouble()));
    } catch (IOException | IllegalArgumentException e) {
      throw new IllegalArgumentException(file + ": " + e.getMessage(), e);
    }
    LoraAdapter a = PeftFormat.read(dir, base.config(), base.model().manager());
    if (a.config().r() != s.rank()) {
      a.close();
      throw new IllegalArgumentException(dir + ": the adapter has rank " + a.config().r()
          + " but " + SETTINGS_FILE + " says " + s.rank());
    }
    return new Discriminator(base, a, s, losses);
  }

  public DiscriminatorSettings settings() {
    return settings;
  }

  public LoraAdapter adapter() {
    return adapter;
  }

  /** The training loss of each optimizer step (empty when untrained). */
  public List<Double> losses() {
    return losses;
  }

  @Override
  public void close() {
    adapter.close();
  }
}
