package org.loratransplant.train.objective;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import org.loratransplant.align.MinEdVocabularyMap;
import org.loratransplant.model.Adapter;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.tokenizer.TextTokenizer;

/**
 * A teacher with its own tokenizer (the KD + MinED baseline). For each student row:
 * <ol>
 *   <li>decode the ids with the student's tokenizer into text; the character (code point) where
 *       each student token ends is the length of the decoded prefix up to it (unknown, and the
 *       position invalid, when that prefix is not a prefix of the whole text, e.g. half of a
 *       multi-byte character);</li>
 *   <li>encode the text with the teacher's tokenizer ({@link TextTokenizer#tokens}: ids and
 *       character spans), with the teacher's BOS first when the student row starts with the
 *       student's BOS; BOS ends at character 0;</li>
 *   <li>student position p is valid when a teacher token ends exactly where student token p
 *       ends: both then predict the token starting at that character. Where several tokens end
 *       at one character, the student side uses the first (a zero-width token after it, such
 *       as the leading {@code '▁'} a SentencePiece decoder strips, belongs to the same context),
 *       the teacher side the last (the tokenizer gives a prepended {@code '▁'} the span of the
 *       character after it, so the last token there is the one whose successor starts there);
 *       </li>
 *   <li>the teacher's distribution at that position is carried onto the student vocabulary
 *       with {@link MinEdVocabularyMap}: probabilities of teacher tokens mapping to one student
 *       token add up; teacher ids without a piece are dropped and the rest renormalised.</li>
 * </ol>
 * Teacher sequences longer than the teacher's context are cut; positions past the cut are
 * invalid.
 */
public final class CrossTokenizerTeacher implements Teacher {
  private final LanguageModel teacher;
  private final Adapter adapter;
  private final TextTokenizer student;
  private final int studentVocab;
  private final MinEdVocabularyMap map;
  private final int studentBos;
  private final int teacherBos;

  /**
   * @param teacher the teacher model with its tokenizer
   * @param adapter the teacher's adapter (null: base model)
   * @param student the student model (its tokenizer and vocabulary size are used)
   */
  public CrossTokenizerTeacher(LanguageModel teacher, Adapter adapter, LanguageModel student) {
    this(teacher, adapter, student.tokenizer(), student.config().vocabSize(),
        MinEdVocabularyMap.between(teacher.tokenizer().file(), student.tokenizer().file()));
  }

  public CrossTokenizerTeacher(LanguageModel teacher, Adapter adapter, TextTokenizer student,
      int studentVocab, MinEdVocabularyMap map) {
    this.teacher = teacher;
    this.adapter = adapter;
    this.student = student;
    this.studentVocab = studentVocab;
    this.map = map;
    for (int t = 0; t < map.teacherSize(); t++) {
      if (map.studentToken(t) >= studentVocab) {
        throw new IllegalArgumentException("teacher token " + t + " maps to student token "
            + map.studentToken(t) + ", outside the student's vocabulary of " + studentVocab);
      }
    }
    int[] sb = student.encode("", true);
    int[] tb = teacher.tokenizer().encode("", true);
    this.studentBos = sb.length == 1 ? sb[0] : -1;
    this.teacherBos = tb.length == 1 ? tb[0] : -1;
  }

  public MinEdVocabularyMap vocabularyMap() {
    return map;
  }

  /** One row's teacher ids and, per student position, the teacher position it reads (-1). */
  record RowAlignment(int[] teacherIds, int[] teacherPositionOf) {}

  /** Aligns one student row (its real tokens only); exposed for tests. */
  RowAlignment align(int[] ids) {
    String text = student.decode(ids);
    int[] studentEnd = new int[ids.length];
    for (int p = 0; p < ids.length; p++) {
      String prefix = student.decode(Arrays.copyOf(ids, p + 1));
      studentEnd[p] = text.startsWith(prefix) ? prefix.codePointCount(0, prefix.length()) : -1;
    }
    TextTokenizer.Tokens tt = teacher.tokenizer().tokens(text);
    boolean bos = teacherBos >= 0 && ids.length > 0 && ids[0] == studentBos;
    int max = teacher.config().maxPositions();
    int n = Math.min(max, tt.ids().length + (bos ? 1 : 0));
    int[] tIds = new int[n];
    Map<Integer, Integer> lastEndingAt = new HashMap<>();
    for (int q = 0; q < n; q++) {
      int k = bos ? q - 1 : q;
      tIds[q] = k < 0 ? teacherBos : tt.ids()[k];
      int end = k < 0 ? 0 : tt.charEnd()[k];
      if (end >= 0) {
        lastEndingAt.put(end, q);
      }
    }
    int[] pos = new int[ids.length];
    Arrays.fill(pos, -1);
    int previousEnd = -1;
    for (int p = 0; p + 1 < ids.length; p++) {
      int e = studentEnd[p];
      if (e >= 0 && e != previousEnd) {
        pos[p] = lastEndingAt.getOrDefault(e, -1);
      }
      if (e >= 0) {
        previousEnd = e;
      }
    }
    return new RowAlignment(tIds, pos);
  }

  @Override
  public Distribution distribution(TokenBatch b, NDManager scope) {
    int rows = b.rows();
    int t = b.length();
    RowAlignment[] aligned = new RowAlignment[rows];
    int tt = 1;
    for (int r = 0; r < rows; r++) {
      int[] ids = new int[b.lengths()[r]];
      for (int i = 0; i < ids.length; i++) {
        ids[i] = Math.toIntExact(b.ids()[r * t + i]);
      }
      aligned[r] = align(ids);
      tt = Math.max(tt, aligned[r].teacherIds().length);
    }
    long[] tIds = new long[rows * tt];
    for (int r = 0; r < rows; r++) {
      int[] ids = aligned[r].teacherIds();
      for (int q = 0; q < ids.length; q++) {
        tIds[r * tt + q] = ids[q];
      }
    }
    int vt = teacher.config().vocabSize();
    float[] teacherLogp;
    try (NDManager tmp = scope.newSubManager()) {
      NDArray logits = ModelOutputs.run(teacher.model(), adapter, tIds, rows, tt, tmp, null,
          false, Set.of()).logits();
      teacherLogp = logits.logSoftmax(-1).toFloatArray(); // (B, Tt, Vt)
    }
    int vs = studentVocab;
    float[] out = new float[rows * t * vs];
    Arrays.fill(out, (float) -Math.log(vs)); // uniform where invalid: finite, weight 0
    float[] valid = new float[rows * t];
    double[] acc = new double[vs];
    for (int r = 0; r < rows; r++) {
      int[] pos = aligned[r].teacherPositionOf();
      for (int p = 0; p < pos.length; p++) {
        if (pos[p] < 0) {
          continue;
        }
        Arrays.fill(acc, 0);
        int base = (r * tt + pos[p]) * vt;
        double kept = 0;
        for (int v = 0; v < vt; v++) {
          int s = map.studentToken(v);
          if (s >= 0) {
            double prob = Math.exp(teacherLogp[base + v]);
            acc[s] += prob;
            kept += prob;
          }
        }
        if (!(kept > 0)) {
          continue;
        }
        int o = (r * t + p) * vs;
        for (int s = 0; s < vs; s++) {
          out[o + s] = acc[s] > 0 ? (float) Math.max(Teacher.LOG_ZERO, Math.log(acc[s] / kept))
              : Teacher.LOG_ZERO;
        }
        valid[r * t + p] = 1f;
      }
    }
    return new Distribution(scope.create(out, new Shape(rows, t, vs)), valid);
  }

  @Override
  public String description() {
    return teacher.model().directory() + " + " + ModelTeacher.describe(adapter) + " via MinED "
        + teacher.tokenizer().file() + " -> " + student.file();
  }
}
