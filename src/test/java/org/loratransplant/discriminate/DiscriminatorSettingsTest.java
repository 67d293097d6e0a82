package org.loratransplant.discriminate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import org.junit.jupiter.api.Test;

/** Settings validation: every message names the key under lt.translora.discriminator. */
class DiscriminatorSettingsTest {
  private static final String FULL = String.join("\n",
      "lt.translora.discriminator {",
      "  rank = 4", "  alpha = 8", "  learning-rate = 0.01", "  epochs = 2", "  batch-size = 4",
      "  prompt-template = \"Q: {query}\\nA: {answer}\\nReal or synthetic?\"",
      "  real-label = \" real\"", "  synthetic-label = \" synthetic\"", "  seed = 7", "}");

  private static Config conf(String extra) {
    return ConfigFactory.parseString(extra).withFallback(ConfigFactory.parseString(FULL));
  }

  private static String error(Runnable r) {
    return assertThrows(IllegalArgumentException.class, r::run).getMessage();
  }

  @Test
  void readsEveryKey() {
    DiscriminatorSettings s = DiscriminatorSettings.from(
        conf("lt.translora.discriminator.keep-fraction = 0.25"));
    assertEquals(new DiscriminatorSettings(4, 8, 0.01, 2, 4,
        "Q: {query}\nA: {answer}\nReal or synthetic?", " real", " synthetic",
        new Filter.TopFraction(0.25), 7), s);
    assertEquals(new Filter.Threshold(-1.5), DiscriminatorSettings.from(
        conf("lt.translora.discriminator.threshold = -1.5")).filter());
  }

  @Test
  void exactlyOneOfKeepFractionAndThreshold() {
    assertEquals("set exactly one of lt.translora.discriminator.keep-fraction and "
        + "lt.translora.discriminator.threshold (neither is set)",
        error(() -> DiscriminatorSettings.from(conf(""))));
    assertTrue(error(() -> DiscriminatorSettings.from(conf(
        "lt.translora.discriminator { keep-fraction = 0.5, threshold = 0 }")))
        .endsWith("(both are set)"));
  }

  @Test
  void badValuesNameTheirKey() {
    String p = "lt.translora.discriminator.";
    assertEquals(p + "rank must be >= 1, got 0", error(() -> DiscriminatorSettings.from(
        conf("lt.translora.discriminator { threshold = 0, rank = 0 }"))));
    assertEquals(p + "keep-fraction must be in (0, 1], got 1.5", error(() ->
        DiscriminatorSettings.from(conf("lt.translora.discriminator.keep-fraction = 1.5"))));
    assertEquals(p + "keep-fraction must be in (0, 1], got 0.0", error(() ->
        DiscriminatorSettings.from(conf("lt.translora.discriminator.keep-fraction = 0"))));
    DiscriminatorSettings d = DiscriminatorSettings.defaults();
    assertEquals(p + "learning-rate must be a positive number, got -1.0", error(() ->
        new DiscriminatorSettings(d.rank(), d.alpha(), -1, d.epochs(), d.batchSize(),
            d.promptTemplate(), d.realLabel(), d.syntheticLabel(), d.filter(), d.seed())));
    assertEquals(p + "epochs must be >= 1, got 0", error(() ->
        new DiscriminatorSettings(d.rank(), d.alpha(), d.learningRate(), 0, d.batchSize(),
            d.promptTemplate(), d.realLabel(), d.syntheticLabel(), d.filter(), d.seed())));
    assertEquals(p + "alpha must be a positive number, got NaN", error(() ->
        new DiscriminatorSettings(d.rank(), Double.NaN, d.learningRate(), d.epochs(),
            d.batchSize(), d.promptTemplate(), d.realLabel(), d.syntheticLabel(), d.filter(),
            d.seed())));
    assertEquals(p + "batch-size must be >= 1, got 0", error(() ->
        new DiscriminatorSettings(d.rank(), d.alpha(), d.learningRate(), d.epochs(), 0,
            d.promptTemplate(), d.realLabel(), d.syntheticLabel(), d.filter(), d.seed())));
    assertEquals(p + "synthetic-label must differ from real-label, got ' real'", error(() ->
        new DiscriminatorSettings(d.rank(), d.alpha(), d.learningRate(), d.epochs(),
            d.batchSize(), d.promptTemplate(), " real", " real", d.filter(), d.seed())));
    assertEquals(p + "real-label must not be blank, got ' '", error(() ->
        new DiscriminatorSettings(d.rank(), d.alpha(), d.learningRate(), d.epochs(),
            d.batchSize(), d.promptTemplate(), " ", " fake", d.filter(), d.seed())));
  }

  @Test
  void promptTemplateMustUseQueryAndOnlyKnownPlaceholders() {
    String p = "lt.translora.discriminator.prompt-template";
    assertEquals(p + " must contain {query}, got 'A: {answer}'", error(() -> DiscriminatorSettings
        .from(conf(p + " = \"A: {answer}\"\nlt.translora.discriminator.threshold = 0"))));
    String m = error(() -> DiscriminatorSettings.from(conf(p + " = \"{query} {input}\"\n"
        + "lt.translora.discriminator.threshold = 0")));
    assertTrue(m.startsWith(p + ": prompt template 'discriminator' uses unknown placeholder "
        + "{input}"), m);
  }

  @Test
  void aMissingKeyIsNamedWithItsSection() {
    Config c = ConfigFactory.parseString("lt.translora.discriminator.threshold = 0")
        .withFallback(ConfigFactory.parseString(FULL.replace("  epochs = 2\n", "")));
    String m = error(() -> DiscriminatorSettings.from(c));
    assertTrue(m.startsWith("lt.translora.discriminator: ") && m.contains("epochs"), m);
    assertEquals("lt.translora.discriminator is missing",
        error(() -> DiscriminatorSettings.from(ConfigFactory.empty())));
  }
}
