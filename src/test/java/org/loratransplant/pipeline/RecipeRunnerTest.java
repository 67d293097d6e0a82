package org.loratransplant.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.typesafe.config.ConfigFactory;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.testing.SparkTestSession;

/** The runner decides whether a stage runs: skip when complete for its key, redo otherwise. */
class RecipeRunnerTest {
  @TempDir Path tmp;

  /** A stage that counts its runs and writes one small output. */
  static Stage counting(StageStore store, String name, String key, List<String> log) {
    return Stage.of(name, List.of(), store, List.of(name + "-out"), key, () -> {
      log.add(name);
      store.writeText(name + "-out/data.txt", name);
      store.mark(name + "-out", RecipeRunner.PENDING);
      ObjectNode st = new ObjectMapper().createObjectNode();
      st.put("rows", log.size());
      return st;
    });
  }

  @Test
  void completeStagesAreSkippedWithTheirStoredFiguresAndPendingOnesRedone() {
    StageStore store = new StageStore(SparkTestSession.get(), tmp.toString());
    List<String> log = new ArrayList<>();
    Recipe r = new Recipe("demo", List.of(counting(store, "a", "k1", log),
        counting(store, "b", "k2", log)));
    Map<String, ObjectNode> first = new RecipeRunner(false).run(r, null);
    assertEquals(List.of("a", "b"), log);
    assertEquals(2, first.get("b").get("rows").asInt());
    assertEquals("k1", store.completedHash("a-out"));

    Map<String, ObjectNode> again = new RecipeRunner(false).run(r, null);
    assertEquals(List.of("a", "b"), log, "nothing ran again");
    assertTrue(again.get("a").get("skipped").asBoolean());
    assertEquals(2, again.get("b").get("rows").asInt(), "stored figures come back");

    // b killed mid-way: its output is pending; only b runs again.
    store.mark("b-out", RecipeRunner.PENDING);
    new RecipeRunner(false).run(r, null);
    assertEquals(List.of("a", "b", "b"), log);

    // Another key for a (its settings changed): a reruns; --force reruns everything.
    Recipe changed = new Recipe("demo", List.of(counting(store, "a", "k1-new", log),
        counting(store, "b", "k2", log)));
    new RecipeRunner(false).run(changed, "a");
    assertEquals(List.of("a", "b", "b", "a"), log, "until a: b not reached");
    new RecipeRunner(true).run(changed, null);
    assertEquals(List.of("a", "b", "b", "a", "a", "b"), log);

    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> new RecipeRunner(false).run(r, "bogus"));
    assertTrue(e.getMessage().contains("bogus") && e.getMessage().contains("[a, b]"),
        e.getMessage());
  }

  @Test
  void aFailingStageLeavesItsOutputIncomplete() {
    StageStore store = new StageStore(SparkTestSession.get(), tmp.toString());
    Stage failing = Stage.of("f", List.of(), store, List.of("f-out"), "k", () -> {
      store.writeText("f-out/part.txt", "half");
      store.mark("f-out", RecipeRunner.PENDING);
      throw new IllegalStateException("killed");
    });
    assertThrows(IllegalStateException.class,
        () -> new RecipeRunner(false).run(new Recipe("r", List.of(failing)), null));
    assertFalse(RecipeRunner.complete(failing));
    assertEquals(RecipeRunner.PENDING, store.completedHash("f-out"));
  }

  @Test
  void keysIgnoreCommentsOriginsAndKeyOrder() {
    var a = ConfigFactory.parseString("# a comment\nx { b = 1, a = [2, 3] }\ny = \"s\"");
    var b = ConfigFactory.parseString("y = s\nx {\n  a = [2, 3]   # other comment\n  b = 1\n}");
    assertEquals(Keys.canonical(a), Keys.canonical(b));
    assertEquals("{\"x\":{\"a\":[2,3],\"b\":1},\"y\":\"s\"}", Keys.canonical(a));
    assertEquals(Keys.of("train", a), Keys.of("train", b));
    var c = ConfigFactory.parseString("x { b = 2, a = [2, 3] }\ny = s");
    assertFalse(Keys.of("train", a).equals(Keys.of("train", c)), "a value change changes it");
    // From files with other paths: the origin (file name, line) is not part of the key.
    var f1 = ConfigFactory.parseString("lr = 0.1").withFallback(ConfigFactory.parseMap(
        Map.of("e", 2), "one.conf"));
    var f2 = ConfigFactory.parseString("lr = 0.1").withFallback(ConfigFactory.parseMap(
        Map.of("e", 2), "elsewhere/two.conf"));
    assertEquals(Keys.of(f1), Keys.of(f2));
  }

  /**
   * A stage key made from a settings record holding a map must not depend on the order the map
   * was filled in (Map.copyOf iterates in an order that changes from JVM to JVM).
   */
  @Test
  void selectSettingsTextIsTheSameWhateverTheMapOrder() {
    var a = new java.util.LinkedHashMap<String, Long>();
    a.put("True", 60L);
    a.put("False", 90L);
    var b = new java.util.LinkedHashMap<String, Long>();
    b.put("False", 90L);
    b.put("True", 60L);
    var sa = new org.loratransplant.pipeline.select.SelectSettings("m", 10, "balanced", "word",
        70, false, 4, "keep", 1, a);
    var sb = new org.loratransplant.pipeline.select.SelectSettings("m", 10, "balanced", "word",
        70, false, 4, "keep", 1, b);
    assertEquals(sa.toString(), sb.toString());
    assertEquals(Keys.of("select", sa), Keys.of("select", sb));
    assertEquals(List.of("False", "True"), List.copyOf(sa.classCounts().keySet()));
  }
}
