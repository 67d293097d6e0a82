package org.loratransplant.safetensors;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/** JSON for headers and index files: strict parsing, and serialization as serde_json does it. */
final class HeaderJson {
  private HeaderJson() {}

  /**
   * Strict: duplicate keys are an error (the reference parser silently keeps the last one, which
   * would let two writers disagree about a tensor), nothing may follow the top-level value but
   * whitespace, and no JSON extensions (comments, single quotes, NaN) are accepted. String length
   * is bounded by the header size limit rather than Jackson's smaller default.
   */
  private static final ObjectMapper STRICT =
      JsonMapper.builder(
              JsonFactory.builder()
                  .streamReadConstraints(
                      StreamReadConstraints.builder()
                          .maxStringLength((int) SafeTensorsFile.MAX_HEADER_BYTES)
                          .build())
                  .build())
          .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
          .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
          .disable(JsonReadFeature.ALLOW_JAVA_COMMENTS)
          .disable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS)
          .build();

  /**
   * Decodes UTF-8, rejecting malformed input instead of substituting U+FFFD (the JDK's default),
   * so a corrupt header is an error rather than silently different tensor names.
   */
  static String decodeUtf8(byte[] bytes) throws CharacterCodingException {
    CharBuffer chars =
        StandardCharsets.UTF_8
            .newDecoder()
            .onMalformedInput(CodingErrorAction.REPORT)
            .onUnmappableCharacter(CodingErrorAction.REPORT)
            .decode(ByteBuffer.wrap(bytes));
    return chars.toString();
  }

  /**
   * Parses one JSON value strictly.
   *
   * @throws IOException whose message says what is wrong and where (line and column) but,
   *     unlike Jackson's own, does not quote the input, which may be megabytes long
   */
  static JsonNode parse(String json) throws IOException {
    try {
      return STRICT.readTree(json);
    } catch (JsonProcessingException e) {
      JsonLocation at = e.getLocation();
      String where = at == null ? "" : " (line " + at.getLineNr() + ", column " + at.getColumnNr() + ")";
      throw new IOException(e.getOriginalMessage() + where, e);
    }
  }

  /**
   * Appends {@code s} as a JSON string literal exactly as serde_json (the Python safetensors
   * library's serializer) writes it: only {@code "}, {@code \} and control characters are
   * escaped, with the short forms where JSON has them and otherwise a backslash, {@code u00} and
   * two lowercase hex digits; non-ASCII characters are written as raw UTF-8.
   */
  static void appendQuoted(StringBuilder out, String s) {
    out.append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      switch (c) {
        case '"' -> out.append("\\\"");
        case '\\' -> out.append("\\\\");
        case '\b' -> out.append("\\b");
        case '\f' -> out.append("\\f");
        case '\n' -> out.append("\\n");
        case '\r' -> out.append("\\r");
        case '\t' -> out.append("\\t");
        default -> {
          if (c < 0x20) {
            out.append('\\').append("u00");
            out.append(Character.forDigit(c >> 4, 16)).append(Character.forDigit(c & 0xF, 16));
          } else {
            out.append(c);
          }
        }
      }
    }
    out.append('"');
  }
}
