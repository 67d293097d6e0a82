package org.loratransplant.tokenizer;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.huggingface.tokenizers.jni.CharSpan;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * A Hugging Face {@code tokenizer.json} through DJL's tokenizers binding. Special tokens are never
 * added implicitly: callers say where BOS goes ({@link #encode(String, boolean)}), because the
 * pipeline concatenates prompt and response ids and must not get a BOS in the middle.
 */
public final class TextTokenizer implements AutoCloseable {
  private static final ObjectMapper JSON = new ObjectMapper();
  private final HuggingFaceTokenizer tokenizer;
  private final Path file;
  private final boolean addBos;
  private final int bosId;

  private TextTokenizer(HuggingFaceTokenizer tokenizer, Path file, boolean addBos, int bosId) {
    this.tokenizer = tokenizer;
    this.file = file;
    this.addBos = addBos;
    this.bosId = bosId;
  }

  /** Whether {@code modelDir} has a {@code tokenizer.json}. */
  public static boolean exists(Path modelDir) {
    return Files.isRegularFile(modelDir.resolve("tokenizer.json"));
  }

  /**
   * Loads {@code tokenizer.json} from a model directory; {@code tokenizer_config.json} says
   * whether the model expects a BOS token first ({@code add_bos_token}, default true).
   */
  public static TextTokenizer load(Path modelDir, int bosId) {
    Path file = modelDir.resolve("tokenizer.json");
    if (!Files.isRegularFile(file)) {
      throw new IllegalArgumentException(file + " does not exist: this model directory has no "
          + "tokenizer (pass token ids instead of text)");
    }
    boolean addBos = true;
    Path cfg = modelDir.resolve("tokenizer_config.json");
    if (Files.isRegularFile(cfg)) {
      try {
        JsonNode node = JSON.readTree(cfg.toFile());
        addBos = node.path("add_bos_token").asBoolean(true);
      } catch (IOException e) {
        throw new IllegalArgumentException(cfg + ": not valid JSON: " + e.getMessage(), e);
      }
    }
    try {
      HuggingFaceTokenizer tok = HuggingFaceTokenizer.newInstance(file,
          Map.of("addSpecialTokens", "false", "truncation", "false", "padding", "false",
              "modelMaxLength", String.valueOf(Integer.MAX_VALUE)));
      return new TextTokenizer(tok, file, addBos, bosId);
    } catch (IOException | RuntimeException e) {
      throw new IllegalArgumentException(file + ": cannot load tokenizer: " + e.getMessage(), e);
    }
  }

  public Path file() {
    return file;
  }

  /** Token ids of {@code text}, with the model's BOS first when {@code withBos} and it uses one. */
  public int[] encode(String text, boolean withBos) {
    long[] ids = tokenizer.encode(text, false, false).getIds();
    boolean bos = withBos && addBos;
    int[] out = new int[ids.length + (bos ? 1 : 0)];
    if (bos) {
      out[0] = bosId;
    }
    for (int i = 0; i < ids.length; i++) {
      out[i + (bos ? 1 : 0)] = Math.toIntExact(ids[i]);
    }
    return out;
  }

  /** Token ids and, per token, its character span in {@code text} (no BOS). */
  public Tokens tokens(String text) {
    Encoding enc = tokenizer.encode(text, false, false);
    long[] ids = enc.getIds();
    CharSpan[] spans = enc.getCharTokenSpans();
    int[] outIds = new int[ids.length];
    int[] starts = new int[ids.length];
    int[] ends = new int[ids.length];
    for (int i = 0; i < ids.length; i++) {
      outIds[i] = Math.toIntExact(ids[i]);
      CharSpan s = spans == null || i >= spans.length ? null : spans[i];
      starts[i] = s == null ? -1 : s.getStart();
      ends[i] = s == null ? -1 : s.getEnd();
    }
    return new Tokens(outIds, enc.getTokens(), starts, ends);
  }

  /** Text of {@code ids}, special tokens skipped. */
  public String decode(int[] ids) {
    long[] l = new long[ids.length];
    for (int i = 0; i < ids.length; i++) {
      l[i] = ids[i];
    }
    return tokenizer.decode(l, true);
  }

  /**
   * Each token decoded on its own, special tokens as "" (what cross-tokenizer alignment walks).
   * A character a byte-fallback tokenizer spells as several byte tokens ({@code <0xE2> <0x9C>
   * <0x93>} for ✓) is decoded whole and given to its last byte's token, the earlier ones getting
   * "": decoded one by one each would be U+FFFD, and the scored token texts, the alignment and
   * word selection would see replacement characters where the answer has a letter. Bytes that
   * never complete a character (a response cut off mid-character) stay U+FFFD, as a full decode
   * gives them.
   */
  public String[] pieces(int[] ids) {
    String[] out = new String[ids.length];
    String[] vocab = null;
    java.io.ByteArrayOutputStream pending = new java.io.ByteArrayOutputStream();
    for (int i = 0; i < ids.length; i++) {
      if (vocab == null && hasByteFallback()) {
        vocab = vocabulary();
      }
      int b = vocab == null ? -1 : byteOf(vocab, ids[i]);
      if (b < 0) {
        out[i] = tokenizer.decode(new long[] {ids[i]}, true);
        pending.reset();
        continue;
      }
      pending.write(b);
      byte[] bytes = pending.toByteArray();
      boolean runEnds = i + 1 == ids.length || byteOf(vocab, ids[i + 1]) < 0;
      if (completesCharacters(bytes) || runEnds) {
        out[i] = new String(bytes, java.nio.charset.StandardCharsets.UTF_8);
        pending.reset();
      } else {
        out[i] = "";
      }
    }
    return out;
  }

  private volatile Boolean byteFallback;

  /** Whether the vocabulary has byte pieces {@code <0x00>}..{@code <0xFF>}. */
  private boolean hasByteFallback() {
    Boolean b = byteFallback;
    if (b == null) {
      b = java.util.Arrays.stream(vocabulary()).anyMatch(p -> p != null && isBytePiece(p));
      byteFallback = b;
    }
    return b;
  }

  private static boolean isBytePiece(String p) {
    return p.length() == 6 && p.startsWith("<0x") && p.endsWith(">");
  }

  /** The byte a byte-fallback piece stands for, or -1 for any other id. */
  private static int byteOf(String[] vocab, int id) {
    if (id < 0 || id >= vocab.length || vocab[id] == null || !isBytePiece(vocab[id])) {
      return -1;
    }
    try {
      return Integer.parseInt(vocab[id].substring(3, 5), 16);
    } catch (NumberFormatException e) {
      return -1;
    }
  }

  /** Whether {@code b} ends on a UTF-8 character boundary (an invalid lead byte ends too). */
  static boolean completesCharacters(byte[] b) {
    int i = 0;
    while (i < b.length) {
      int lead = b[i] & 0xFF;
      int len = lead < 0x80 ? 1 : lead >= 0xF0 && lead < 0xF8 ? 4 : lead >= 0xE0 ? 3
          : lead >= 0xC0 ? 2 : 1; // a stray continuation byte is a character (U+FFFD) of its own
      if (lead >= 0xF8) {
        len = 1;
      }
      if (i + len > b.length) {
        return false;
      }
      i += len;
    }
    return true;
  }

  /**
   * Each id's piece as the vocabulary spells it ({@code "▁F"}, {@code "<0x0A>"}, {@code "</s>"}):
   * unlike {@link #pieces}, the word-initial marker survives, which word-level selection needs.
   * Read once from tokenizer.json's {@code model.vocab}.
   */
  public String[] vocabularyPieces(int[] ids) {
    String[] vocab = vocabulary();
    String[] out = new String[ids.length];
    for (int i = 0; i < ids.length; i++) {
      if (ids[i] < 0 || ids[i] >= vocab.length || vocab[ids[i]] == null) {
        throw new IllegalArgumentException(file + ": token id " + ids[i]
            + " is not in the vocabulary");
      }
      out[i] = vocab[ids[i]];
    }
    return out;
  }

  private volatile String[] vocabulary;

  private String[] vocabulary() {
    String[] v = vocabulary;
    if (v != null) {
      return v;
    }
    try {
      com.fasterxml.jackson.databind.JsonNode root = new com.fasterxml.jackson.databind
          .ObjectMapper().readTree(file.toFile());
      com.fasterxml.jackson.databind.JsonNode vocab = root.path("model").path("vocab");
      java.util.Map<Integer, String> byId = new java.util.HashMap<>();
      if (vocab.isObject()) {
        vocab.fields().forEachRemaining(e -> byId.put(e.getValue().asInt(), e.getKey()));
      } else if (vocab.isArray()) { // Unigram: [[piece, score], ...]
        for (int i = 0; i < vocab.size(); i++) {
          byId.put(i, vocab.get(i).get(0).asText());
        }
      }
      for (com.fasterxml.jackson.databind.JsonNode a : root.path("added_tokens")) {
        byId.put(a.path("id").asInt(), a.path("content").asText());
      }
      int n = byId.keySet().stream().mapToInt(Integer::intValue).max().orElse(-1) + 1;
      v = new String[n];
      for (var e : byId.entrySet()) {
        v[e.getKey()] = e.getValue();
      }
      vocabulary = v;
      return v;
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(file + ": " + e.getMessage(), e);
    }
  }

  /**
   * The text that {@code generated} adds after {@code prompt}. Decoding the new tokens alone
   * would lose the word-initial space a SentencePiece decoder strips from the start of a text,
   * so prompt+new is decoded and the prompt's text cut off.
   */
  public String continuation(int[] prompt, int[] generated) {
    int[] all = new int[prompt.length + generated.length];
    System.arraycopy(prompt, 0, all, 0, prompt.length);
    System.arraycopy(generated, 0, all, prompt.length, generated.length);
    String full = decode(all);
    String head = decode(prompt);
    return full.startsWith(head) ? full.substring(head.length()) : decode(generated);
  }

  @Override
  public void close() {
    tokenizer.close();
  }

  /** An encoding: ids, token strings, and character spans ({@code -1} where unknown). */
  public record Tokens(int[] ids, String[] tokens, int[] charStart, int[] charEnd) {}
}
