package org.loratransplant.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Stream;
import org.loratransplant.safetensors.DType;
import org.loratransplant.safetensors.HalfFloats;

/**
 * A random-weight Llama checkpoint with the published shape of a real model, in the Hugging
 * Face layout ({@code config.json}, {@code generation_config.json}, safetensors, sharded above
 * {@link #SHARD_BYTES}, and a tokenizer), so loading, memory and speed can be measured at real
 * sizes without downloading anything.
 *
 * <p>Weights are drawn as Hugging Face initialises a Llama: projections and embeddings normal
 * with std 0.02 (approximated by a sum of four uniforms, which keeps generation at a few ns a
 * value), RMSNorm weights 1, so activations stay finite. They are generated while the file is
 * written, a few MB at a time, so memory stays small whatever the shape.
 *
 * <p>The tokenizer is a byte-fallback BPE in the format of stories260K's: {@code <unk> <s>
 * </s>}, the 256 byte tokens, {@code ▁} and the printable ASCII characters, then unused
 * {@code <extra_N>} tokens up to the vocabulary size. Text therefore encodes one token per
 * character; the real models' merges are not reproduced (their ids would mean nothing with
 * random weights anyway). bos is 1 and eos 2 in every shape.
 */
public final class RandomModel {
  /** Shards are cut before a tensor that would take one past this size. */
  static final long SHARD_BYTES = 2L << 30;
  private static final int CHUNK_VALUES = 1 << 20;
  private static final ObjectMapper JSON = new ObjectMapper();

  /**
   * A published architecture.
   *
   * @param ropeScaling llama3 RoPE scaling as in the published config, or null
   */
  public record Shape(String name, int hidden, int layers, int heads, int kvHeads, int ffn,
      int vocab, boolean tied, double ropeTheta, int maxPositions, double rmsEps,
      Map<String, Object> ropeScaling) {

    /** Parameters, counting a tied head once. */
    public long parameters() {
      long d = (long) hidden / heads;
      long perLayer = (long) hidden * (heads * d + 2 * kvHeads * d) + heads * d * hidden
          + 3L * hidden * ffn + 2L * hidden;
      return perLayer * layers + (long) vocab * hidden * (tied ? 1 : 2) + hidden;
    }
  }

  /** The shapes, as their config.json on the Hugging Face hub publishes them. */
  public static final List<Shape> SHAPES = List.of(
      new Shape("smollm-135m", 576, 30, 9, 3, 1536, 49152, true, 10000.0, 2048, 1e-5, null),
      new Shape("smollm-360m", 960, 32, 15, 5, 2560, 49152, true, 10000.0, 2048, 1e-5, null),
      new Shape("llama-1b", 2048, 16, 32, 8, 8192, 128256, true, 500000.0, 131072, 1e-5,
          Map.of("rope_type", "llama3", "factor", 32.0, "low_freq_factor", 1.0,
              "high_freq_factor", 4.0, "original_max_position_embeddings", 8192)),
      new Shape("llama-7b", 4096, 32, 32, 32, 11008, 32000, false, 10000.0, 4096, 1e-5, null));

  private RandomModel() {}

  /** The shape called {@code name}; fails listing the known ones. */
  public static Shape shape(String name) {
    return SHAPES.stream().filter(s -> s.name().equals(name)).findFirst().orElseThrow(() ->
        new IllegalArgumentException("unknown shape '" + name + "' (known: "
            + SHAPES.stream().map(Shape::name).toList() + ")"));
  }

  /** A smaller variant of a shape (fewer layers, smaller vocab or context). */
  public static Shape scaled(Shape s, int layers, int vocab, int maxPositions) {
    return new Shape(s.name() + "-" + layers + "-layers", s.hidden(), layers, s.heads(), s.kvHeads(), s.ffn(),
        vocab, s.tied(), s.ropeTheta(), maxPositions, s.rmsEps(), s.ropeScaling());
  }

  /**
   * Writes the model to {@code out} (which must not exist), through a temporary directory
   * beside it renamed at the end.
   *
   * @return the bytes of weights written
   */
  public static long write(Shape shape, Path out, long seed, DType dtype) {
    return write(shape, out, seed, dtype, SHARD_BYTES);
  }

  /** As above, cutting shards at {@code shardBytes} (tests write small sharded models). */
  static long write(Shape shape, Path out, long seed, DType dtype, long shardBytes) {
    if (dtype != DType.F32 && dtype != DType.BF16 && dtype != DType.F16) {
      throw new IllegalArgumentException("dtype must be F32, BF16 or F16, got " + dtype);
    }
    if (shape.vocab() < 3 + 256 + 96) {
      throw new IllegalArgumentException("vocab " + shape.vocab() + " is smaller than the "
          + "tokenizer's " + (3 + 256 + 96) + " fixed tokens");
    }
    if (Files.exists(out)) {
      throw new IllegalArgumentException(out + " already exists");
    }
    Path parent = out.toAbsolutePath().getParent();
    Path tmp = parent.resolve("." + out.getFileName() + ".tmp");
    try {
      Files.createDirectories(parent);
      deleteTree(tmp);
      Files.createDirectories(tmp);
      Files.writeString(tmp.resolve("config.json"), config(shape, dtype));
      Files.writeString(tmp.resolve("generation_config.json"),
          "{\"bos_token_id\": 1, \"eos_token_id\": 2}\n");
      Files.writeString(tmp.resolve("tokenizer.json"), tokenizer(shape.vocab()));
      Files.writeString(tmp.resolve("tokenizer_config.json"), "{\"add_bos_token\": true, "
          + "\"bos_token\": \"<s>\", \"eos_token\": \"</s>\", \"unk_token\": \"<unk>\"}\n");
      long bytes = weights(shape, tmp, seed, dtype, shardBytes);
      Files.move(tmp, out, StandardCopyOption.ATOMIC_MOVE);
      return bytes;
    } catch (IOException e) {
      throw new UncheckedIOException("writing " + out + ": " + e.getMessage(), e);
    } finally {
      try {
        deleteTree(tmp);
      } catch (IOException ignored) {
        // best effort: a failed write leaves no partial model under the real name either way
      }
    }
  }

  /** One tensor to write: its name, shape and whether it is a norm weight (all ones). */
  private record Spec(String name, long[] shape, boolean ones) {
    long numel() {
      long n = 1;
      for (long d : shape) {
        n *= d;
      }
      return n;
    }
  }

  private static List<Spec> specs(Shape s) {
    long d = s.hidden() / s.heads();
    long e = s.hidden();
    List<Spec> out = new ArrayList<>();
    out.add(new Spec("model.embed_tokens.weight", new long[] {s.vocab(), e}, false));
    for (int i = 0; i < s.layers(); i++) {
      String p = "model.layers." + i + ".";
      out.add(new Spec(p + "input_layernorm.weight", new long[] {e}, true));
      out.add(new Spec(p + "self_attn.q_proj.weight", new long[] {s.heads() * d, e}, false));
      out.add(new Spec(p + "self_attn.k_proj.weight", new long[] {s.kvHeads() * d, e}, false));
      out.add(new Spec(p + "self_attn.v_proj.weight", new long[] {s.kvHeads() * d, e}, false));
      out.add(new Spec(p + "self_attn.o_proj.weight", new long[] {e, s.heads() * d}, false));
      out.add(new Spec(p + "post_attention_layernorm.weight", new long[] {e}, true));
      out.add(new Spec(p + "mlp.gate_proj.weight", new long[] {s.ffn(), e}, false));
      out.add(new Spec(p + "mlp.up_proj.weight", new long[] {s.ffn(), e}, false));
      out.add(new Spec(p + "mlp.down_proj.weight", new long[] {e, s.ffn()}, false));
    }
    out.add(new Spec("model.norm.weight", new long[] {e}, true));
    if (!s.tied()) {
      out.add(new Spec("lm_head.weight", new long[] {s.vocab(), e}, false));
    }
    return out;
  }

  private static long weights(Shape shape, Path dir, long seed, DType dtype, long shardBytes)
      throws IOException {
    List<List<Spec>> shards = new ArrayList<>();
    List<Spec> current = new ArrayList<>();
    long size = 0;
    for (Spec spec : specs(shape)) {
      long bytes = spec.numel() * dtype.byteSize();
      if (!current.isEmpty() && size + bytes > shardBytes) {
        shards.add(current);
        current = new ArrayList<>();
        size = 0;
      }
      current.add(spec);
      size += bytes;
    }
    shards.add(current);
    Gaussian rng = new Gaussian(seed);
    long total = 0;
    Map<String, String> weightMap = new LinkedHashMap<>();
    for (int k = 0; k < shards.size(); k++) {
      String file = shards.size() == 1 ? "model.safetensors"
          : String.format(Locale.ROOT, "model-%05d-of-%05d.safetensors", k + 1, shards.size());
      total += shard(dir.resolve(file), shards.get(k), dtype, rng);
      for (Spec spec : shards.get(k)) {
        weightMap.put(spec.name(), file);
      }
    }
    if (shards.size() > 1) {
      ObjectNode index = JSON.createObjectNode();
      index.putObject("metadata").put("total_size", total);
      ObjectNode map = index.putObject("weight_map");
      weightMap.forEach(map::put);
      Files.writeString(dir.resolve("model.safetensors.index.json"),
          JSON.writerWithDefaultPrettyPrinter().writeValueAsString(index));
    }
    return total;
  }

  /** One safetensors file: the header, then each tensor generated a chunk at a time. */
  private static long shard(Path file, List<Spec> specs, DType dtype, Gaussian rng)
      throws IOException {
    StringBuilder header = new StringBuilder("{\"__metadata__\":{\"format\":\"pt\"}");
    long offset = 0;
    for (Spec spec : specs) {
      long bytes = spec.numel() * dtype.byteSize();
      header.append(",\"").append(spec.name()).append("\":{\"dtype\":\"").append(dtype.name())
          .append("\",\"shape\":[");
      for (int i = 0; i < spec.shape().length; i++) {
        header.append(i == 0 ? "" : ",").append(spec.shape()[i]);
      }
      header.append("],\"data_offsets\":[").append(offset).append(',').append(offset + bytes)
          .append("]}");
      offset += bytes;
    }
    header.append('}');
    while ((header.length() + 8) % 8 != 0) {
      header.append(' ');
    }
    byte[] head = header.toString().getBytes(StandardCharsets.UTF_8);
    ByteBuffer chunk = ByteBuffer.allocateDirect(CHUNK_VALUES * dtype.byteSize())
        .order(ByteOrder.LITTLE_ENDIAN);
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE_NEW,
        StandardOpenOption.WRITE)) {
      ByteBuffer prefix = ByteBuffer.allocate(8 + head.length).order(ByteOrder.LITTLE_ENDIAN);
      prefix.putLong(head.length).put(head).flip();
      writeFully(ch, prefix);
      for (Spec spec : specs) {
        long left = spec.numel();
        while (left > 0) {
          int n = (int) Math.min(CHUNK_VALUES, left);
          chunk.clear();
          for (int j = 0; j < n; j++) {
            float v = spec.ones() ? 1f : 0.02f * rng.next();
            switch (dtype) {
              case F32 -> chunk.putFloat(v);
              case BF16 -> chunk.putShort(HalfFloats.floatToBf16(v));
              default -> chunk.putShort(HalfFloats.floatToHalf(v));
            }
          }
          chunk.flip();
          writeFully(ch, chunk);
          left -= n;
        }
      }
    }
    return offset;
  }

  private static void writeFully(FileChannel ch, ByteBuffer b) throws IOException {
    while (b.hasRemaining()) {
      ch.write(b);
    }
  }

  /**
   * Standard normal draws, approximated by the sum of four uniforms (Irwin-Hall, rescaled to
   * unit variance) from 16-bit parts of one xorshift draw: ~2 ns a value, where {@code
   * nextGaussian} took ~20 and a 7B shape has 6.7 billion values.
   */
  private static final class Gaussian {
    private static final float SCALE = (float) (Math.sqrt(12.0 / 4) / 65536.0);
    private long state;

    Gaussian(long seed) {
      state = seed * 0x9E3779B97F4A7C15L + 0x632BE59BD9B4E019L;
      if (state == 0) {
        state = 1;
      }
    }

    float next() {
      long x = state;
      x ^= x << 13;
      x ^= x >>> 7;
      x ^= x << 17;
      state = x;
      long sum = (x & 0xffff) + ((x >>> 16) & 0xffff) + ((x >>> 32) & 0xffff) + (x >>> 48);
      return (sum - 2 * 65535L) * SCALE;
    }
  }

  private static String config(Shape s, DType dtype) throws IOException {
    ObjectNode c = JSON.createObjectNode();
    c.putArray("architectures").add("LlamaForCausalLM");
    c.put("model_type", "llama");
    c.put("hidden_size", s.hidden());
    c.put("intermediate_size", s.ffn());
    c.put("num_hidden_layers", s.layers());
    c.put("num_attention_heads", s.heads());
    c.put("num_key_value_heads", s.kvHeads());
    c.put("head_dim", s.hidden() / s.heads());
    c.put("vocab_size", s.vocab());
    c.put("max_position_embeddings", s.maxPositions());
    c.put("rms_norm_eps", s.rmsEps());
    c.put("rope_theta", s.ropeTheta());
    if (s.ropeScaling() != null) {
      c.set("rope_scaling", JSON.valueToTree(new java.util.TreeMap<>(s.ropeScaling())));
    }
    c.put("hidden_act", "silu");
    c.put("tie_word_embeddings", s.tied());
    c.put("attention_bias", false);
    c.put("mlp_bias", false);
    c.put("bos_token_id", 1);
    c.put("eos_token_id", 2);
    c.put("torch_dtype", switch (dtype) {
      case BF16 -> "bfloat16";
      case F16 -> "float16";
      default -> "float32";
    });
    c.put("_random_weights", "written by lora-transplant random-model (shape " + s.name()
        + "); not a trained model");
    return JSON.writerWithDefaultPrettyPrinter().writeValueAsString(c);
  }

  /** A byte-fallback BPE tokenizer.json of {@code vocab} tokens (see the class comment). */
  static String tokenizer(int vocab) throws IOException {
    ObjectNode t = JSON.createObjectNode();
    t.put("version", "1.0");
    t.putNull("truncation");
    t.putNull("padding");
    ArrayNode added = t.putArray("added_tokens");
    String[] specials = {"<unk>", "<s>", "</s>"};
    for (int i = 0; i < specials.length; i++) {
      ObjectNode a = added.addObject();
      a.put("id", i).put("content", specials[i]).put("single_word", false).put("lstrip", false)
          .put("rstrip", false).put("normalized", false).put("special", true);
    }
    ObjectNode norm = t.putObject("normalizer");
    norm.put("type", "Sequence");
    ArrayNode norms = norm.putArray("normalizers");
    norms.addObject().put("type", "Prepend").put("prepend", "\u2581");
    ObjectNode replace = norms.addObject().put("type", "Replace");
    replace.putObject("pattern").put("String", " ");
    replace.put("content", "\u2581");
    t.putNull("pre_tokenizer");
    t.putNull("post_processor");
    ObjectNode dec = t.putObject("decoder");
    dec.put("type", "Sequence");
    ArrayNode decs = dec.putArray("decoders");
    ObjectNode back = decs.addObject().put("type", "Replace");
    back.putObject("pattern").put("String", "\u2581");
    back.put("content", " ");
    decs.addObject().put("type", "ByteFallback");
    decs.addObject().put("type", "Fuse");
    decs.addObject().put("type", "Strip").put("content", " ").put("start", 1).put("stop", 0);
    ObjectNode model = t.putObject("model");
    model.put("type", "BPE");
    model.putNull("dropout");
    model.put("unk_token", "<unk>");
    model.putNull("continuing_subword_prefix");
    model.putNull("end_of_word_suffix");
    model.put("fuse_unk", true);
    model.put("byte_fallback", true);
    model.put("ignore_merges", false);
    ObjectNode v = model.putObject("vocab");
    int id = 0;
    for (String s : specials) {
      v.put(s, id++);
    }
    for (int b = 0; b < 256; b++) {
      v.put(String.format(Locale.ROOT, "<0x%02X>", b), id++);
    }
    v.put("\u2581", id++);
    for (char ch = '!'; ch <= '~'; ch++) {
      v.put(String.valueOf(ch), id++);
    }
    while (id < vocab) {
      v.put("<extra_" + id + ">", id++);
    }
    model.putArray("merges");
    return JSON.writeValueAsString(t);
  }

  private static void deleteTree(Path dir) throws IOException {
    if (!Files.exists(dir)) {
      return;
    }
    try (Stream<Path> s = Files.walk(dir)) {
      for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
        Files.delete(p);
      }
    }
  }
}
