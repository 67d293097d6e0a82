package org.loratransplant.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.loratransplant.testing.SharedData;

class TextTokenizerTest {

  @ParameterizedTest
  @ValueSource(strings = {"stories260K", "babyllama-tok105"})
  void roundTripsTheLlama2cFixtures(String model) {
    String file = model.equals("stories260K") ? "stories260K_t0_n256.txt"
        : "babyllama_tok105_t0_n256.txt";
    String text = SharedData.text(SharedData.llama2c(file)).strip();
    try (TextTokenizer tok = TextTokenizer.load(SharedData.model(model), 1)) {
      int[] ids = tok.encode(text, true);
      assertEquals(1, ids[0], "BOS first");
      assertEquals(text, tok.decode(ids));
      assertTrue(ids.length > 50);
    }
  }

  @Test
  void encodesTheHfReferenceGreedyTokensBackToTheirText() {
    JsonNode ref = SharedData.json(SharedData.hfReference("stories260K_logprobs.json"));
    int[] ids = SharedData.ints(ref.get("greedy_from_bos_200_new_tokens"));
    try (TextTokenizer tok = TextTokenizer.load(SharedData.model("stories260K"), 1)) {
      String text = tok.decode(ids);
      assertEquals(ref.get("greedy_decoded_text").asText(), text);
      int[] again = tok.encode(text, false);
      assertArrayEquals(ids, again, "the greedy ids are the canonical encoding of their text");
    }
  }

  @Test
  void piecesAndSpansCoverTheText() {
    try (TextTokenizer tok = TextTokenizer.load(SharedData.model("stories260K"), 1)) {
      String text = "Lily saw a big dog.";
      TextTokenizer.Tokens t = tok.tokens(text);
      String[] pieces = tok.pieces(t.ids());
      assertEquals(t.ids().length, pieces.length);
      assertEquals(text.replace(" ", ""), String.join("", pieces).replace(" ", ""));
      assertEquals(0, t.charStart()[0]);
      assertEquals(text.length(), t.charEnd()[t.ids().length - 1]);
    }
  }

  @Test
  void missingTokenizerIsAClearError(@TempDir Path dir) {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> TextTokenizer.load(dir, 1));
    assertTrue(e.getMessage().contains("tokenizer.json"), e.getMessage());
  }

  @Test
  void piecesOfACharacterSpanningByteFallbackTokensJoinToItsText() {
    // "✓" (3 bytes) and "😀" (4) have no piece in tok512: each is byte-fallback tokens.
    String text = " odd✓ed and 😀!";
    try (TextTokenizer tok = TextTokenizer.load(SharedData.model("stories260K"), 1)) {
      int[] ids = tok.encode(text, false);
      String[] vocab = tok.vocabularyPieces(ids);
      long byteTokens = java.util.Arrays.stream(vocab).filter(v -> v.startsWith("<0x")).count();
      assertEquals(3 + 4, byteTokens, java.util.Arrays.toString(vocab));
      String[] pieces = tok.pieces(ids);
      String joined = String.join("", pieces);
      // (Pieces decoded alone lose a word-initial space, as before: "▁and" is "and".)
      assertTrue(joined.contains("odd✓ed") && joined.contains("😀!"), joined);
      assertTrue(joined.indexOf('\uFFFD') < 0, joined);
      // The character sits on its last byte's token; the earlier bytes' pieces are empty.
      int first = java.util.Arrays.asList(vocab).indexOf("<0xE2>");
      assertEquals(java.util.List.of("", "", "✓"),
          java.util.List.of(pieces[first], pieces[first + 1], pieces[first + 2]));
      // A character cut off (its last byte missing) keeps the replacement character.
      int[] cut = java.util.Arrays.copyOf(ids, first + 2);
      assertEquals("\uFFFD", tok.pieces(cut)[first + 1]);
    }
  }
}
