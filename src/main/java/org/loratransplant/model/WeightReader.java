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
 * infinity by one sum in libtorch.
 */
final class WeightReader {
  /** Bytes of a 16- or 64-bit tensor staged at a time while converting it to float32. */
  private static final int STAGE_BYTES = 16 << 20;
  /** Most bytes of a tensor filled through one direct view. */
  private static final long BLOCK_BYTES = 1L << 30;

  private final Checkpoint ckpt;
  private final NDManager manager;
  private long bytesRead;
  private ByteBuffer stage; // allocated at the first tensor that needs converting

  WeightReader(Checkpoint ckpt, NDManager manager) {
    this.ckpt = ckpt;
    this.manager = manager;
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
    NDArray out = manager.create(new Shape(dims), DataType.FLOAT32); // uninitialised
    try {
      long at = 0;
      for (int i = 0; i < names.size(); i++) {
        fill(names.get(i), out, at, rows[i], innerSize * Float.BYTES);
        at += rows[i];
      }
      return out;
    } catch (RuntimeException e) {
      out.close();
      throw e;
    }
  }

  /** File bytes read so far. */
  long bytesRead() {
    return bytesRead;
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
   * Reads one tensor as float32 into rows {@code [row, row + rows)} of {@code out}, a block of
   * at most {@link #BLOCK_BYTES} at a time (a direct view holds at most 2 GiB, and a Llama-3-8B
   * embedding is 2.1 GB), checking each block.
   */
  private void fill(String name, NDArray out, long row, long rows, long rowBytes) {
    TensorInfo info = ckpt.info(name);
    long perBlock = Math.max(1, BLOCK_BYTES / rowBytes);
    for (long r0 = 0; r0 < rows; r0 += perBlock) {
      long n = Math.min(perBlock, rows - r0);
      NDArray block = LlamaModel.rowsOf(out, row + r0, n);
      try {
        ByteBuffer view = ((PtNDArray) block).toByteBuffer(true); // aliases the tensor's memory
        long first = r0 * rowBytes / Float.BYTES; // element offset within the tensor
        if (info.dtype() == DType.F32) {
          ckpt.readBytesInto(name, first * Float.BYTES, view.duplicate());
        } else {
          convert(info, first, n * rowBytes / Float.BYTES, view);
        }
        // One reduction on one thread: a sum is finite when no value is NaN or infinite (an
        // overflow of the sum itself, only with absurd weights, is told apart by the scan).
        try (NDArray sum = block.sum()) {
          if (!Float.isFinite(sum.getFloat())) {
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
    bytesRead += info.byteLength();
  }

  /**
   * A 16- or 64-bit tensor to float32, {@link #STAGE_BYTES} of the file at a time, from a
   * direct staging buffer into the tensor's memory (bf16 is the top half of a float32, so that
   * one is a shift).
   */
  private void convert(TensorInfo info, long offset, long numel, ByteBuffer region) {
    if (stage == null) {
      stage = ByteBuffer.allocateDirect(STAGE_BYTES).order(ByteOrder.LITTLE_ENDIAN);
    }
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
