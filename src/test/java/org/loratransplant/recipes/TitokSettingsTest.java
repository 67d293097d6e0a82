package org.loratransplant.recipes;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.loratransplant.config.Experiment;
import org.loratransplant.config.Settings;

/** lt.titok values outside their range are refused by the conf check, naming the key. */
class TitokSettingsTest {
  static TitokSettings with(String set) {
    return TitokSettings.from(new Experiment(Settings.load(Path.of("conf/default.conf"),
        List.of(set))));
  }

  @Test
  void topPOutsideZeroToOneIsRefused() {
    for (String bad : List.of("2", "1.0001", "0", "-0.5")) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> with("lt.titok.generation.top-p=" + bad));
      assertTrue(e.getMessage().contains("generation.top-p"), e.getMessage());
    }
    assertEquals(1.0, with("lt.titok.generation.top-p=1").topP());
    assertEquals(0.9, with("lt.titok.generation.top-p=0.9").topP());
  }

  @Test
  void maxFailedFractionOutsideZeroToOneIsRefused() {
    for (String bad : List.of("1.5", "-0.1", "NaN")) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> with("lt.titok.max-failed-fraction=" + bad));
      assertTrue(e.getMessage().contains("max-failed-fraction"), e.getMessage());
    }
    assertEquals(0.05, with("lt.titok.samples=250").maxFailedFraction(), "the default");
    assertEquals(0.0, with("lt.titok.max-failed-fraction=0").maxFailedFraction());
  }

  /**
   * The conf's relative model paths are resolved on the driver: on a cluster an executor's
   * working directory is its own, and "../shared/models/stories260K" named nothing there.
   */
  @Test
  void localModelPathsBecomeAbsoluteAndUrisStay() {
    TitokSettings s = with("lt.titok.target-model=../shared/models/llama2xs");
    assertEquals(Path.of("../shared/models/llama2xs").toAbsolutePath().normalize().toString(),
        s.targetModel());
    assertTrue(Path.of(s.sourceModel()).isAbsolute(), s.sourceModel());
    assertTrue(Path.of(s.sourceAdapter()).isAbsolute(), s.sourceAdapter());
    assertEquals("s3a://bucket/models/x", TitokSettings.absolute("s3a://bucket/models/x"));
    assertEquals("hdfs://nn:8020/m", TitokSettings.absolute("hdfs://nn:8020/m"));
  }
}
