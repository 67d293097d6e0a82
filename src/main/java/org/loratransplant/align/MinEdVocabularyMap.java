package org.loratransplant.align;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * FuseLLM's MinED vocabulary mapping: each teacher token goes to the student token whose piece
 * text has the minimum edit distance to its own, so a teacher distribution can be carried onto
 * the student vocabulary (probabilities of teacher tokens mapping to the same student token add
 * up).
 *
 * <h2>Piece text</h2>
 * A token's vocabulary string ({@code "▁the"}, not its decoded text), with two normalisations so
 * tokenizer families compare: a byte-fallback piece {@code <0xNN>} of an ASCII byte becomes that
 * character (a space becomes {@code '▁'}), and a byte-level (GPT-2 style) vocabulary's
 * {@code 'Ġ'} becomes {@code '▁'}. Special tokens take part like any other (an exact match, e.g.
 * {@code </s>} to {@code </s>}, wins).
 *
 * <h2>Rule</h2>
 * Levenshtein distance over code points (insert, delete, substitute, each 1). Among student
 * tokens at the minimum distance the shortest piece wins, then the lowest id; an exact match has
 * distance 0 so it always wins. Example: with student pieces {@code in} (id 5), {@code ng} (id
 * 7), {@code ings} (id 2), teacher {@code ing} maps to {@code in}: all three are at distance 1,
 * {@code in} and {@code ng} are shorter than {@code ings}, and 5 &lt; 7. Student ids without a
 * piece (gaps in the vocabulary) are never targets.
 *
 * <p>Known limit of the tie rule: for a character-level student, every single character of a
 * longer teacher piece is at the same distance, so {@code "the"} maps to the lowest-id one of
 * {@code t, h, e}, not necessarily the first character.
 *
 * <p>Cost: |V_teacher| x |V_student| distances, pruned by length (the length difference bounds
 * the distance from below); built once per tokenizer pair and cached by file content.
 */
public final class MinEdVocabularyMap {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Map<String, MinEdVocabularyMap> CACHE = new ConcurrentHashMap<>();

    private final int[] toStudent;
    private final int studentSize;

    private MinEdVocabularyMap(int[] toStudent, int studentSize) {
        this.toStudent = toStudent;
        this.studentSize = studentSize;
    }

    /**
     * The map between two {@code tokenizer.json} files, built on first use and cached by their
     * contents.
     */
    public static MinEdVocabularyMap between(Path teacherTokenizerJson, Path studentTokenizerJson) {
        String key = sha256(teacherTokenizerJson) + ":" + sha256(studentTokenizerJson);
        return CACHE.computeIfAbsent(key, k -> build(pieces(teacherTokenizerJson),
                pieces(studentTokenizerJson)));
    }

    /**
     * The map between two vocabularies given as piece texts by id ({@code null} where an id has
     * no token).
     */
    public static MinEdVocabularyMap build(List<String> teacherPieces, List<String> studentPieces) {
        // Student pieces grouped by length in code points, each group in id order.
        Map<Integer, List<Integer>> byLength = new HashMap<>();
        int[][] student = new int[studentPieces.size()][];
        Map<String, Integer> exact = new HashMap<>();
        for (int id = 0; id < studentPieces.size(); id++) {
            String p = studentPieces.get(id);
            if (p == null) {
                continue;
            }
            student[id] = p.codePoints().toArray();
            byLength.computeIfAbsent(student[id].length, k -> new ArrayList<>()).add(id);
            exact.putIfAbsent(p, id);
        }
        int[] lengths = byLength.keySet().stream().mapToInt(Integer::intValue).sorted().toArray();
        int[] out = new int[teacherPieces.size()];
        Arrays.fill(out, -1);
        for (int t = 0; t < out.length; t++) {
            String p = teacherPieces.get(t);
            if (p == null) {
                continue;
            }
            Integer hit = exact.get(p);
            out[t] = hit != null ? hit : nearest(p.codePoints().toArray(), student, byLength, lengths);
        }
        return new MinEdVocabularyMap(out, studentPieces.size());
    }

    private static int nearest(int[] piece, int[][] student, Map<Integer, List<Integer>> byLength,
                               int[] lengths) {
        int best = -1;
        int bestDist = Integer.MAX_VALUE;
        for (int len : lengths) { // ascending, so within equal distance the shorter came first
            if (Math.abs(len - piece.length) > bestDist) {
                continue;
            }
            for (int id : byLength.get(len)) { // ascending ids
                int d = levenshtein(piece, student[id], bestDist);
                if (d < bestDist) {
                    bestDist = d;
                    best = id;
                }
            }
        }
        return best;
    }

    /** Edit distance, or any value above {@code bound} once it is sure to exceed it. */
    static int levenshtein(int[] a, int[] b, int bound) {
        int[] prev = new int[b.length + 1];
        int[] cur = new int[b.length + 1];
        for (int j = 0; j <= b.length; j++) {
            prev[j] = j;
        }
        for (int i = 1; i <= a.length; i++) {
            cur[0] = i;
            int rowMin = cur[0];
            for (int j = 1; j <= b.length; j++) {
                int sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
                cur[j] = Math.min(sub, Math.min(prev[j] + 1, cur[j - 1] + 1));
                rowMin = Math.min(rowMin, cur[j]);
            }
            if (rowMin > bound) {
                return rowMin;
            }
            int[] tmp = prev;
            prev = cur;
            cur = tmp;
        }
        return prev[b.length];
    }

    /** The student token teacher token {@code teacherId} maps to, or -1 (no piece). */
    public int studentToken(int teacherId) {
        return teacherId >= 0 && teacherId < toStudent.length ? toStudent[teacherId] : -1;
    }

    public int teacherSize() {
        return toStudent.length;
    }

    public int studentSize() {
        return studentSize;
    }

    /** The piece texts of a {@code tokenizer.json}, by id (model vocabulary and added tokens). */
    public static List<String> pieces(Path tokenizerJson) {
        JsonNode root;
        try {
            root = JSON.readTree(tokenizerJson.toFile());
        } catch (IOException e) {
            throw new UncheckedIOException(tokenizerJson + ": cannot read: " + e.getMessage(), e);
        }
        boolean byteLevel = root.toString().contains("\"ByteLevel\"");
        Map<Integer, String> byId = new HashMap<>();
        JsonNode vocab = root.path("model").path("vocab");
        if (vocab.isObject()) { // BPE, WordPiece, WordLevel: {"piece": id}
            for (Iterator<Map.Entry<String, JsonNode>> it = vocab.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                byId.put(e.getValue().asInt(), e.getKey());
            }
        } else if (vocab.isArray()) { // Unigram: [["piece", score], ...]
            for (int i = 0; i < vocab.size(); i++) {
                byId.put(i, vocab.get(i).get(0).asText());
            }
        } else {
            throw new IllegalArgumentException(tokenizerJson + ": model.vocab is neither an object "
                    + "nor an array");
        }
        for (JsonNode t : root.path("added_tokens")) {
            byId.put(t.path("id").asInt(), t.path("content").asText());
        }
        int size = byId.keySet().stream().mapToInt(Integer::intValue).max().orElse(-1) + 1;
        List<String> out = new ArrayList<>(size);
        for (int i = 0; i < size; i++) {
            String p = byId.get(i);
            out.add(p == null ? null : pieceText(p, byteLevel));
        }
        return out;
    }

    /** The normalised piece text of a vocabulary string (see the class comment). */
    public static String pieceText(String vocabToken, boolean byteLevel) {
        if (vocabToken.length() == 6 && vocabToken.startsWith("<0x") && vocabToken.endsWith(">")) {
            try {
                int b = Integer.parseInt(vocabToken.substring(3, 5), 16);
                if (b < 0x80) {
                    return b == ' ' ? "\u2581" : String.valueOf((char) b);
                }
            } catch (NumberFormatException e) {
                return vocabToken;
            }
        }
        return byteLevel ? vocabToken.replace('\u0120', '\u2581') : vocabToken;
    }

    private static String sha256(Path file) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256")
                    .digest(Files.readAllBytes(file)));
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot read: " + e.getMessage(), e);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
