package org.loratransplant.config;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The settings a refused run directory differs in, named leaf by leaf. */
class SettingsDiffTest {
  @Test
  void namesEachChangedAddedAndRemovedLeaf() {
    Config before = ConfigFactory.parseString(
        "titok { precision = fp32, k-percent = 70, tags = [a, b] }, train { epochs = 3 }, x = 1");
    Config after = ConfigFactory.parseString(
        "titok { precision = auto, k-percent = 70, tags = [a, c] }, train { epochs = 3 }, y = 2");
    List<SettingsDiff.Change> c = SettingsDiff.changes(before, after);
    assertEquals(List.of(
        new SettingsDiff.Change("titok.precision", "fp32", "auto"),
        new SettingsDiff.Change("titok.tags", "[\"a\",\"b\"]", "[\"a\",\"c\"]"),
        new SettingsDiff.Change("x", "1", null),
        new SettingsDiff.Change("y", null, "2")), c);
    assertEquals("lt.titok.precision: fp32 -> auto; lt.titok.tags: [\"a\",\"b\"] -> "
        + "[\"a\",\"c\"]; and 2 more", SettingsDiff.describe(c, 2, "lt."));
    assertEquals(List.of(), SettingsDiff.changes(before, before));
  }
}
