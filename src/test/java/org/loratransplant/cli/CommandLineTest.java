package org.loratransplant.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;
import org.loratransplant.testing.SharedData;

/** The jobs/lt commands as a user calls them: help, strict options, and outputs. */
class CommandLineTest {

  record Run(int code, String out, String err) {}

  static Run run(String... args) {
    PrintStream out = System.out;
    PrintStream err = System.err;
    ByteArrayOutputStream o = new ByteArrayOutputStream();
    ByteArrayOutputStream e = new ByteArrayOutputStream();
    try {
      System.setOut(new PrintStream(o, true, StandardCharsets.UTF_8));
      System.setErr(new PrintStream(e, true, StandardCharsets.UTF_8));
      int code = Main.run(args);
      return new Run(code, o.toString(StandardCharsets.UTF_8), e.toString(StandardCharsets.UTF_8));
    } finally {
      System.setOut(out);
      System.setErr(err);
    }
  }

  @Test
  void everyCommandHasHelpAndRejectsUnknownOptions() {
    for (String c : Main.commands().keySet()) {
      Run help = run(c, "--help");
      assertEquals(0, help.code(), c);
      assertTrue(help.out().contains("usage: jobs/lt " + c), help.out());
      Run bad = run(c, "--no-such-option", "x");
      assertEquals(2, bad.code(), c);
      assertTrue(bad.err().contains("unknown option --no-such-option"), bad.err());
    }
    assertEquals(2, run("no-such-command").code());
    assertEquals(2, run().code());
  }

  @Test
  void generatePrintsOnlyTheTextAndMatchesRunC() {
    Run r = run("generate", "--model", SharedData.model("stories260K").toString(),
        "--temperature", "0", "--max-new-tokens", "200");
    assertEquals(0, r.code(), r.err());
    assertEquals(SharedData.text(SharedData.llama2c("stories260K_greedy_t0_n200.expected.txt")),
        r.out().substring(0, r.out().length() - 1));
  }

  @Test
  void logprobsWorksWithIdsOnAModelWithoutTokenizer() throws Exception {
    Run r = run("logprobs", "--model", SharedData.hfReference("tiny-qwen2").toString(), "--ids",
        "1,68,228,45", "--prompt-tokens", "2");
    assertEquals(0, r.code(), r.err());
    JsonNode j = new ObjectMapper().readTree(r.out());
    assertTrue(j.get("logprobs").get(0).isNull() && j.get("logprobs").get(1).isNull());
    double sum = j.get("logprobs").get(2).asDouble() + j.get("logprobs").get(3).asDouble();
    assertEquals(sum, j.get("sum").asDouble(), 1e-5);
    Run noTok = run("logprobs", "--model", SharedData.hfReference("tiny-qwen2").toString(),
        "--text", "hello");
    assertEquals(1, noTok.code());
    assertTrue(noTok.err().contains("tokenizer.json"), noTok.err());
    Run both = run("logprobs", "--model", "x", "--text", "a", "--ids", "1");
    assertEquals(2, both.code());
  }

  @Test
  void benchRuntimeRefusesALaneCountBelowOneBeforeLoadingTheModel() {
    // The model directory does not exist: the lane count must be refused first.
    Run r = run("bench-runtime", "--model", "no-such-model", "--lanes", "1,0");
    assertEquals(2, r.code());
    assertTrue(r.err().contains("--lanes") && r.err().contains("got 0"), r.err());
  }

  @Test
  void benchRuntimeComparesStaticAndContinuousBatching() throws Exception {
    Run bad = run("bench-runtime", "--model", "no-such-model", "--variable-tokens", "9-3");
    assertEquals(2, bad.code());
    assertTrue(bad.err().contains("--variable-tokens") && bad.err().contains("'9-3'"),
        bad.err());
    Run r = run("bench-runtime", "--model", SharedData.model("stories260K").toString(),
        "--score-batches", "", "--generate-batches", "", "--expert-batches", "",
        "--train-batches", "", "--lanes", "1", "--variable-batches", "2",
        "--variable-tokens", "2-6", "--variable-requests", "3", "--repeats", "1", "--json");
    assertEquals(0, r.code(), r.err());
    JsonNode line = new ObjectMapper().readTree(r.out().lines()
        .filter(l -> l.contains("generate-variable")).findFirst().orElseThrow());
    assertEquals(6, line.get("requests").asInt());
    assertTrue(line.get("tokens").asInt() >= 12 && line.get("tokens").asInt() <= 36,
        line.toString());
    assertTrue(line.get("static_tokens_per_s").asDouble() > 0
        && line.get("continuous_tokens_per_s").asDouble() > 0, line.toString());
    // A run this short may measure 0 CPU seconds (the clock's 10 ms tick): null, not Infinity.
    JsonNode cpu = line.get("static_tokens_per_cpu_s");
    assertTrue(cpu.isNull() || cpu.asDouble() > 0, line.toString());
  }

  @Test
  void logprobsWithAdapterMatchesPeftAndMergedAgrees() throws Exception {
    String base = SharedData.hfReference("tiny-llama3").toString();
    String adapter = SharedData.hfReference("peft-tiny-llama3-lora").toString();
    JsonNode want = SharedData.json(SharedData.hfReference("peft-tiny-llama3-lora")
        .resolve("expected.json")).get("active").get(0);
    String ids = want.get("input_ids").toString().replaceAll("[\\[\\] ]", "");
    Run active = run("logprobs", "--model", base, "--adapter", adapter, "--ids", ids);
    Run merged = run("logprobs", "--model", base, "--adapter", adapter, "--merged", "--ids", ids);
    assertEquals(0, active.code(), active.err());
    ObjectMapper m = new ObjectMapper();
    double a = m.readTree(active.out()).get("sum").asDouble();
    double b = m.readTree(merged.out()).get("sum").asDouble();
    assertEquals(want.get("sum_logprob").asDouble(), a, 1e-3);
    assertEquals(a, b, 1e-3);
  }

  @Test
  void anUnknownUntilStageIsBadUsageFoundBeforeSparkStarts() {
    Run r = run("titok", "--until", "bogus");
    assertEquals(2, r.code(), r.err());
    assertTrue(r.err().contains("--until bogus") && r.err().contains("discriminate"), r.err());
    // The settings are printed just before the session starts: nothing was started.
    assertTrue(!r.err().contains("settings from"), r.err());
  }

  @Test
  void evaluateRefusesAnUnwritableOutBeforeEvaluating(@org.junit.jupiter.api.io.TempDir
      java.nio.file.Path tmp) throws Exception {
    java.nio.file.Path file = java.nio.file.Files.writeString(tmp.resolve("a-file"), "x");
    // The model does not exist either: the --out check comes first, before any loading.
    Run r = run("evaluate", "--model", tmp.resolve("no-model").toString(), "--out",
        file.resolve("report.json").toString());
    assertEquals(2, r.code(), r.err());
    assertTrue(r.err().contains("--out") && r.err().contains("not a directory"), r.err());
    r = run("evaluate", "--model", tmp.resolve("no-model").toString(), "--out", tmp.toString());
    assertEquals(2, r.code(), r.err());
    assertTrue(r.err().contains("is a directory"), r.err());
  }

  @Test
  void benchRuntimeRefusesAnAnswerAsLongAsTheSequenceBeforeLoading(@org.junit.jupiter.api.io
      .TempDir java.nio.file.Path tmp) {
    // The model does not exist: the option is checked first.
    Run r = run("bench-runtime", "--model", tmp.resolve("no-model").toString(), "--seq-len",
        "64", "--train-answer", "64");
    assertEquals(2, r.code(), r.err());
    assertTrue(r.err().contains("--train-answer") && r.err().contains("1..63"), r.err());
  }
}
