package org.loratransplant.safetensors;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * A tensor to write: element type, shape and its bytes exactly as they go into the file
 * (little-endian elements, row-major).
 *
 * <p>The constructor checks that the bytes match the shape, so a mismatch is caught before any
 * file is touched. The byte array is not copied, to avoid doubling the memory of large
 * tensors: do not modify it until the write is done. Equality compares contents. One tensor is
 * limited to what a Java array holds (about 2 GiB).
 *
 * @param dtype element type
 * @param shape dimensions, outermost first; empty for a scalar
 * @param data {@code numel * dtype.byteSize()} bytes, little-endian
 */
public record TensorData(DType dtype, List<Long> shape, byte[] data) {

  /**
   * @throws IllegalArgumentException when a dimension is negative, the element count overflows,
   *     or {@code data} does not have exactly the bytes the shape and dtype call for
   */
  public TensorData {
    Objects.requireNonNull(dtype, "dtype");
    Objects.requireNonNull(data, "data");
    shape = List.copyOf(shape);
    long expected;
    try {
      expected = Math.multiplyExact(checkedNumel(shape), dtype.byteSize());
    } catch (ArithmeticException e) {
      throw new IllegalArgumentException("byte size of shape " + shape + " overflows", e);
    }
    if (data.length != expected) {
      throw new IllegalArgumentException(
          "shape " + shape + " of " + dtype + " needs " + expected + " bytes, got " + data.length);
    }
  }

  /**
   * @param dtype element type
   * @param shape dimensions
   * @param data little-endian bytes, not copied
   * @return the tensor
   */
  public static TensorData of(DType dtype, long[] shape, byte[] data) {
    return new TensorData(dtype, toList(shape), data);
  }

  /**
   * @param shape dimensions
   * @param values {@code numel} values, row-major
   * @return an F32 tensor holding exactly these values
   */
  public static TensorData ofFloat32(long[] shape, float[] values) {
    byte[] bytes = allocate(shape, values, DType.F32);
    ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().put(values);
    return new TensorData(DType.F32, toList(shape), bytes);
  }

  /**
   * @param shape dimensions
   * @param values {@code numel} values, row-major
   * @return an F16 tensor with each value rounded to nearest even (overflow to infinity)
   */
  public static TensorData ofFloat16(long[] shape, float[] values) {
    byte[] bytes = allocate(shape, values, DType.F16);
    ByteBuffer out = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
    for (float v : values) {
      out.putShort(HalfFloats.floatToHalf(v));
    }
    return new TensorData(DType.F16, toList(shape), bytes);
  }

  /**
   * @param shape dimensions
   * @param values {@code numel} values, row-major
   * @return a BF16 tensor with each value rounded to nearest even
   */
  public static TensorData ofBFloat16(long[] shape, float[] values) {
    byte[] bytes = allocate(shape, values, DType.BF16);
    ByteBuffer out = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
    for (float v : values) {
      out.putShort(HalfFloats.floatToBf16(v));
    }
    return new TensorData(DType.BF16, toList(shape), bytes);
  }

  /** @return the number of elements */
  public long numel() {
    return checkedNumel(shape);
  }

  private static byte[] allocate(long[] shape, float[] values, DType dtype) {
    long numel = checkedNumel(toList(shape));
    if (values.length != numel) {
      throw new IllegalArgumentException(
          "shape " + Arrays.toString(shape) + " has " + numel + " elements, got " + values.length
              + " values");
    }
    long bytes = numel * dtype.byteSize(); // values.length is an int, so this fits a long
    if (bytes > SafeTensorsFile.MAX_ARRAY_LENGTH) {
      throw new IllegalArgumentException(
          "tensor of shape " + Arrays.toString(shape) + " as " + dtype + " needs " + bytes
              + " bytes, more than a Java array holds");
    }
    return new byte[(int) bytes];
  }

  private static long checkedNumel(List<Long> shape) {
    long n = 1;
    for (Long d : shape) {
      if (d < 0) {
        throw new IllegalArgumentException("negative dimension in shape " + shape);
      }
      try {
        n = Math.multiplyExact(n, d);
      } catch (ArithmeticException e) {
        throw new IllegalArgumentException("element count of shape " + shape + " overflows", e);
      }
    }
    return n;
  }

  private static List<Long> toList(long[] shape) {
    return Arrays.stream(shape).boxed().toList();
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof TensorData t
        && dtype == t.dtype
        && shape.equals(t.shape)
        && Arrays.equals(data, t.data);
  }

  @Override
  public int hashCode() {
    return Objects.hash(dtype, shape, Arrays.hashCode(data));
  }

  @Override
  public String toString() {
    return "TensorData[" + dtype + " " + shape + ", " + data.length + " bytes]";
  }
}
