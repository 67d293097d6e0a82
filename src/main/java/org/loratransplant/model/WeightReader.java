package org.loratransplant.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.engine.PtNDArray;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.List;
import org.loratransplant.safetensors.Checkpoint;
import org.loratransplant.safetensors.DType;
import org.loratransplant.safetensors.FiniteCheck;
import org.loratransplant.safetensors.TensorInfo;

/**
 * Reads checkpoint tensors straight into libtorch memory: the destination tensor is allocated
 * by libtorch and the file's bytes are read into a direct view of it, so no Java array holds a
 * weight and nothing is transposed (the decoder multiplies by the {@code (out, in)} layout the
 * checkpoint stores). Several tensors can go into one, stacked along the first dimension (q, k
 * and v of a layer become one {@code (Nq + 2Nk, E)} weight, gate and up one {@code (2I, E)}),
 * which costs nothing extra: each part is read into its rows.
 *
 * <p>Weights are stored in float32, the type the CPU computes in: F32 tensors are read as they
 * are, BF16, F16 and F64 ones converted in bounded chunks. Each part is checked for NaN and
 * infinity by one sum in libtorch. For a model loaded in bf16 ({@link LlamaModel#load(
 * java.nio.file.Path, ai.djl.Device, Precision)}) a product's BF16 tensors keep their bits
 * ({@link #stackBf16Bits}) and any other is rounded ({@link #stackRoundedBf16}); in float16 a
 * product's F16 tensors are read or mapped as they are ({@link #stackF16}) and any other is
 * converted ({@link #stackConverted}).
 *
 * <p>When {@code mapFiles} is set (a CPU model), float32 tensors that lie back to back in the
 * file in stacking order (q, k, v and gate, up do in checkpoints written by transformers and by
 * {@code random-model}: module order) are not read at all: the tensor is a private
 * copy-on-write memory mapping of the file ({@link Checkpoint#mapPrivate}), so loading costs
 * the finite check's one pass over the page cache, the weights share the page cache's memory
 * (and with every other process that maps the same file, such as a second executor JVM), and an
 * in-place change (a LoRA merge) copies only the pages it writes. The mappings must stay
 * reachable as long as the tensors live ({@link #mappings}); DJL does not hold them.
 *
 * <p>A tensor is filled in blocks of {@link #BLOCK_BYTES} by {@code threads} threads at once:
 * most of a load is the kernel's work of faulting in fresh memory and copying the file's pages
 * into it (on a 4.9 GB checkpoint read from the page cache, 1.2 million page faults and ~3 s of
 * system time on one thread), and that work scales with cores.
 */
final class WeightReader implements AutoCloseable {
  /** Bytes of a 16- or 64-bit tensor staged at a time while converting it to float32. */
  private static final int STAGE_BYTES = 16 << 20;
  /** Most bytes of a tensor filled through one direct view, by one thread. */
  private static final long BLOCK_BYTES = 16L << 20;

  private final Checkpoint ckpt;
  private final NDManager manager;
  private final java.util.concurrent.ExecutorService pool; // null: fill on the calling thread
  private final boolean mapFiles;
  private final List<java.nio.MappedByteBuffer> mappings = new java.util.ArrayList<>();
  private final java.util.concurrent.atomic.AtomicLong bytesRead =
      new java.util.concurrent.atomic.AtomicLong();
  // Allocated at a thread's first block that needs converting.
  private final ThreadLocal<ByteBuffer> stage = ThreadLocal.withInitial(
      () -> ByteBuffer.allocateDirect(STAGE_BYTES).order(ByteOrder.LITTLE_ENDIAN));

  WeightReader(Checkpoint ckpt, NDManager manager) {
    this(ckpt, manager, 1, false);
  }

  /**
   * A reader filling each tensor with {@code threads} threads; with {@code mapFiles} (only for a
   * CPU {@code manager}) mapping the tensors it can instead of reading them.
   */
  WeightReader(Checkpoint ckpt, NDManager manager, int threads, boolean mapFiles) {
    this.ckpt = ckpt;
    this.manager = manager;
    this.mapFiles = mapFiles;
    this.pool = threads <= 1 ? null : java.util.concurrent.Executors.newFixedThreadPool(threads,
        r -> {
          Thread t = new Thread(() -> {
            // Each block's finite check is one small reduction: on one thread (see load).
            IntraOpThreads.single();
            r.run();
          }, "weight-reader");
          t.setDaemon(true);
          return t;
        });
  }

  @Override
  public void close() {
    if (pool != null) {
      pool.shutdownNow();
    }
  }

  /** One tensor with the shape config.json implies. */
  NDArray read(String name, long... shape) {
    return stack(List.of(name), new long[] {shape[0]}, Arrays.copyOfRange(shape, 1,
        shape.length));
  }

  /**
   * The tensors {@code names}, each {@code (rows[i], ...inner)}, stacked along the first
   * dimension into one float32 tensor on the CPU.
   */
  NDArray stack(List<String> names, long[] rows, long... inner) {
    return stackInto(names, rows, DType.F32, mapFiles, mappings, inner);
  }

  /**
   * As {@link #stack}, rounded to bf16 (nearest even) in a new tensor on this reader's device.
   * When this reader maps files, a float32 source is mapped for the rounding and unmapped right
   * after (the bf16 copy is all that stays), instead of being read into fresh memory first: on a
   * cached 4.9 GB file most of a read is faulting in that memory.
   */
  NDArray stackRoundedBf16(List<String> names, long[] rows, long... inner) {
    return stackConverted(names, rows, TrainingOps::bf16Round, inner);
  }

  /**
   * As {@link #stack}, converted by {@code convert} into a new tensor; a float32 source is
   * mapped for the conversion and unmapped right after, as for {@link #stackRoundedBf16}.
   */
  NDArray stackConverted(List<String> names, long[] rows,
      java.util.function.UnaryOperator<NDArray> convert, long... inner) {
    List<java.nio.MappedByteBuffer> transientMaps = new java.util.ArrayList<>();
    NDArray source = stackInto(names, rows, DType.F32, mapFiles, transientMaps, inner);
    try {
      return convert.apply(source);
    } finally {
      source.close();
      transientMaps.forEach(WeightReader::unmap);
    }
  }

  /**
   * Unmaps a mapping no tensor uses any more now, rather than when the collector finds it
   * (until then its pages would count in the process's RSS beside the bf16 copy).
   */
  private static void unmap(java.nio.MappedByteBuffer buffer) {
    try {
      java.lang.reflect.Field f = sun.misc.Unsafe.class.getDeclaredField("theUnsafe");
      f.setAccessible(true);
      ((sun.misc.Unsafe) f.get(null)).invokeCleaner(buffer);
    } catch (ReflectiveOperationException | RuntimeException e) {
      // Left to the collector: correct, only later.
    }
  }

  /**
   * As {@link #stack}, always read into fresh memory: for a tensor that is converted and
   * dropped at once, whose mapping would otherwise stay (the mappings live as long as the model).
   */
  NDArray stackRead(List<String> names, long[] rows, long... inner) {
    return stackInto(names, rows, DType.F32, false, mappings, inner);
  }

  /** Whether every tensor of {@code names} is stored as BF16 in the checkpoint. */
  boolean allBf16(List<String> names) {
    return allOf(names, DType.BF16);
  }

  /** Whether every tensor of {@code names} is stored as {@code dtype} in the checkpoint. */
  boolean allOf(List<String> names, DType dtype) {
    return names.stream().allMatch(n -> ckpt.has(n) && ckpt.info(n).dtype() == dtype);
  }

  /**
   * As {@link #stack} for F16 tensors ({@link #allOf}), a float16 tensor of the file's values
   * as they are, mapped like float32 ones when it can be.
   */
  NDArray stackF16(List<String> names, long[] rows, long... inner) {
    if (!allOf(names, DType.F16)) {
      throw new IllegalArgumentException("not all F16: " + names);
    }
    return stackInto(names, rows, DType.F16, mapFiles, mappings, inner);
  }

  /**
   * As {@link #stack} for BF16 tensors ({@link #allBf16}), keeping their bits: a float16 tensor
   * holding the file's bf16 values unchanged, for {@link TrainingOps#bf16Bits} to view as the
   * bf16 tensor it is (DJL cannot make a bf16 tensor). Mapped like float32 ones when it can be.
   * Each block is checked for NaN and infinity as bf16.
   */
  NDArray stackBf16Bits(List<String> names, long[] rows, long... inner) {
    if (!allBf16(names)) {
      throw new IllegalArgumentException("not all BF16: " + names);
    }
    return stackInto(names, rows, DType.BF16, mapFiles, mappings, inner);
  }

  /**
   * The stacked tensor for {@code raw}: F32, a float32 tensor (any float dtype in the file,
   * converted); BF16, a float16 tensor holding the file's BF16 bits as they are; F16, a float16
   * tensor of the file's F16 values. Mapped when {@code map} and the file allows, the mapping
   * then added to {@code recordMappings}, which must keep it while the tensor lives.
   */
  private NDArray stackInto(List<String> names, long[] rows, DType raw, boolean map,
      List<java.nio.MappedByteBuffer> recordMappings, long... inner) {
    long innerSize = 1;
    for (long d : inner) {
      innerSize *= d;
    }
    long total = 0;
    for (int i = 0; i < names.size(); i++) {
      long[] want = new long[inner.length + 1];
      want[0] = rows[i];
      System.arraycopy(inner, 0, want, 1, inner.length);
      check(names.get(i), want);
      total += rows[i];
    }
    long[] dims = new long[inner.length + 1];
    dims[0] = total;
    System.arraycopy(inner, 0, dims, 1, inner.length);
    DataType type = raw == DType.F32 ? DataType.FLOAT32 : DataType.FLOAT16;
    java.nio.MappedByteBuffer mapped = map
        && names.stream().allMatch(n -> ckpt.info(n).dtype() == raw)
        ? ckpt.mapPrivate(names) : null;
    // A direct buffer becomes a tensor over its memory (no copy); otherwise uninitialised memory.
    NDArray out = mapped != null ? manager.create(mapped, new Shape(dims), type)
        : manager.create(new Shape(dims), type);
    if (mapped != null) {
      recordMappings.add(mapped);
    }
    try {
      long at = 0;
      for (int i = 0; i < names.size(); i++) {
        fill(names.get(i), out, raw, at, rows[i], innerSize * raw.byteSize(), mapped == null);
        at += rows[i];
      }
      return out;
    } catch (RuntimeException e) {
      out.close();
      throw e;
    }
  }

  /** The file mappings that tensors read so far alias: keep them reachable while those live. */
  List<java.nio.MappedByteBuffer> mappings() {
    return List.copyOf(mappings);
  }

  /** The file that holds tensor {@code name}, for messages. */
  String fileOf(String name) {
    return ckpt.fileOf(name);
  }

  /** File bytes read (or mapped and checked) so far. */
  long bytesRead() {
    return bytesRead.get();
  }

  private void check(String name, long[] shape) {
    if (!ckpt.has(name)) {
      throw new ModelConfigException(ckpt.dir() + ": tensor '" + name + "' is missing");
    }
    TensorInfo info = ckpt.info(name);
    if (!Arrays.equals(info.dims(), shape)) {
      throw new ModelConfigException(ckpt.fileOf(name) + ": tensor '" + name + "' has shape "
          + Arrays.toString(info.dims()) + " but config.json implies " + Arrays.toString(shape));
    }
    if (!info.dtype().isFloatingPoint()) {
      throw new ModelConfigException(ckpt.fileOf(name) + ": tensor '" + name + "' has dtype "
          + info.dtype() + ", not a floating-point type");
    }
  }

  /**
   * Reads one tensor as float32 into rows {@code [row, row + rows)} of {@code out} (or, when
   * not {@code read}, only checks those rows: a mapping already holds them), a block of at most
   * {@link #BLOCK_BYTES} at a time (a direct view holds at most 2 GiB), checking each block; the
   * blocks go to the pool's threads when there is one.
   */
  private void fill(String name, NDArray out, DType raw, long row, long rows, long rowBytes,
      boolean read) {
    long perBlock = Math.max(1, BLOCK_BYTES / rowBytes);
    List<java.util.concurrent.Future<?>> pending = new java.util.ArrayList<>();
    try {
      for (long r0 = 0; r0 < rows; r0 += perBlock) {
        long first = r0;
        long n = Math.min(perBlock, rows - r0);
        Runnable block = () -> fillBlock(name, out, raw, row + first, first, n, rowBytes, read);
        if (pool == null || rows <= perBlock) {
          block.run();
        } else {
          pending.add(pool.submit(block));
        }
      }
      for (java.util.concurrent.Future<?> f : pending) {
        f.get();
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while reading '" + name + "'", e);
    } catch (java.util.concurrent.ExecutionException e) {
      pending.forEach(f -> f.cancel(false));
      if (e.getCause() instanceof RuntimeException r) {
        throw r;
      }
      throw new IllegalStateException("reading '" + name + "'", e.getCause());
    }
    bytesRead.addAndGet(ckpt.info(name).byteLength());
  }

  /**
   * Rows {@code [r0, r0 + n)} of tensor {@code name} ({@code rowBytes} each as stored in out)
   * into rows from {@code outRow} of out.
   */
  private void fillBlock(String name, NDArray out, DType raw, long outRow, long r0, long n,
      long rowBytes, boolean read) {
    TensorInfo info = ckpt.info(name);
    NDArray block = LlamaModel.rowsOf(out, outRow, n);
    try {
      boolean bits = raw == DType.BF16; // bf16 values kept as they are
      if (read) {
        ByteBuffer view = ((PtNDArray) block).toByteBuffer(true); // aliases the tensor's memory
        if (raw == info.dtype()) {
          ckpt.readBytesInto(name, r0 * rowBytes, view.duplicate());
        } else {
          convert(info, r0 * rowBytes / Float.BYTES, n * rowBytes / Float.BYTES, view);
        }
      }
      // One reduction on one thread: a sum is finite when no value is NaN or infinite (an
      // overflow of the sum itself, only with absurd weights, is told apart by the scan). A
      // float16 block is summed in float32 (its own sum overflows at 65504), without a float32
      // copy of the block.
      try (NDArray values = bits ? TrainingOps.bf16Bits(block) : null;
          NDArray sum = raw == DType.F16 ? TrainingOps.sumFloat32(block)
              : (values != null ? values : block).sum();
          NDArray sum32 = bits ? sum.toType(DataType.FLOAT32, false) : null) {
        if (!Float.isFinite((bits ? sum32 : sum).getFloat())) {
          String problem = FiniteCheck.problem(name, ckpt.readFloat32(name));
          if (problem != null) {
            throw new ModelConfigException(ckpt.fileOf(name) + ": " + problem);
          }
        }
      }
    } finally {
      if (block != out) {
        block.close();
      }
    }
  }

  /**
   * A 16- or 64-bit tensor to float32, {@link #STAGE_BYTES} of the file at a time, from a
   * direct staging buffer into the tensor's memory (bf16 is the top half of a float32, so that
   * one is a shift).
   */
  private void convert(TensorInfo info, long offset, long numel, ByteBuffer region) {
    ByteBuffer stage = this.stage.get();
    int size = info.dtype().byteSize();
    long perChunk = STAGE_BYTES / size;
    java.nio.FloatBuffer out = region.duplicate().order(ByteOrder.nativeOrder()).asFloatBuffer();
    for (long start = 0; start < numel; start += perChunk) {
      int n = (int) Math.min(perChunk, numel - start);
      stage.clear();
      stage.limit(n * size);
      readRange(info, (offset + start) * size, stage);
      stage.flip();
      switch (info.dtype()) {
        case BF16 -> {
          java.nio.ShortBuffer in = stage.asShortBuffer();
          for (int j = 0; j < n; j++) {
            out.put(Float.intBitsToFloat((in.get(j) & 0xffff) << 16));
          }
        }
        case F16 -> {
          java.nio.ShortBuffer in = stage.asShortBuffer();
          for (int j = 0; j < n; j++) {
            out.put(org.loratransplant.safetensors.HalfFloats.halfToFloat(in.get(j)));
          }
        }
        case F64 -> {
          java.nio.DoubleBuffer in = stage.asDoubleBuffer();
          for (int j = 0; j < n; j++) {
            out.put((float) in.get(j));
          }
        }
        default -> throw new IllegalStateException("not a float dtype: " + info.dtype());
      }
    }
  }

  /** Bytes {@code [offset, offset + target.remaining())} of a tensor's data. */
  private void readRange(TensorInfo info, long offset, ByteBuffer target) {
    ckpt.readBytesInto(info.name(), offset, target);
  }
}
