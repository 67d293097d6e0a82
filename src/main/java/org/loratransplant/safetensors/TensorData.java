package org.loratransplant.safetensors;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/** A tensor to write: dtype, shape and its little-endian bytes. */
public record TensorData(DType dtype, long[] shape, byte[] data) {

  public TensorData {
    shape = shape.clone();
    long numel = 1;
    for (long d : shape) {
      if (d < 0) {
        throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(shape));
      }
      numel = Math.multiplyExact(numel, d);
    }
    if (numel * dtype.size() != data.length) {
      throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " x " + dtype
          + " needs " + numel * dtype.size() + " bytes, got " + data.length);
    }
  }

  @Override
  public long[] shape() {
    return shape.clone();
  }

  public static TensorData ofFloat32(long[] shape, float[] values) {
    ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    b.asFloatBuffer().put(values);
    return new TensorData(DType.F32, shape, b.array());
  }

  /** Rounds to bfloat16, nearest-even (NaN stays NaN). */
  public static TensorData ofBFloat16(long[] shape, float[] values) {
    ByteBuffer b = ByteBuffer.allocate(values.length * 2).order(ByteOrder.LITTLE_ENDIAN);
    for (float v : values) {
      int bits = Float.floatToRawIntBits(v);
      int rounded = Float.isNaN(v) ? (bits >>> 16) | 0x40
          : (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16;
      b.putShort((short) rounded);
    }
    return new TensorData(DType.BF16, shape, b.array());
  }

  public static TensorData ofFloat16(long[] shape, float[] values) {
    ByteBuffer b = ByteBuffer.allocate(values.length * 2).order(ByteOrder.LITTLE_ENDIAN);
    for (float v : values) {
      b.putShort(HalfFloat.fromFloat(v));
    }
    return new TensorData(DType.F16, shape, b.array());
  }
}
