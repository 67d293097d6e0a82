package org.loratransplant.safetensors;

import java.util.List;
import java.util.Objects;

/**
 * One tensor's header entry.
 *
 * <p>The shape is an immutable {@code List<Long>} rather than a {@code long[]} so that the record
 * keeps value semantics ({@code equals}, {@code hashCode}) and cannot be changed through its
 * accessor; {@link #dims()} gives a fresh {@code long[]} for APIs that want one. Offsets are
 * relative to the start of the data section (the byte after the header), as in the file; {@code
 * end} is exclusive.
 *
 * @param name tensor name as in the header
 * @param dtype element type
 * @param shape dimensions, outermost first (row-major); empty for a scalar
 * @param begin first byte of the data, relative to the data section
 * @param end one past the last byte, relative to the data section
 */
public record TensorInfo(String name, DType dtype, List<Long> shape, long begin, long end) {

  /**
   * Validates the invariants every entry of a readable file satisfies.
   *
   * @throws IllegalArgumentException when a dimension is negative, the offsets are reversed or
   *     the element count overflows a {@code long}
   */
  public TensorInfo {
    Objects.requireNonNull(name, "name");
    Objects.requireNonNull(dtype, "dtype");
    shape = List.copyOf(shape);
    if (begin < 0 || end < begin) {
      throw new IllegalArgumentException(
          "tensor " + name + ": invalid data offsets [" + begin + ", " + end + "]");
    }
    long n = 1;
    for (long d : shape) {
      if (d < 0) {
        throw new IllegalArgumentException("tensor " + name + ": negative dimension in " + shape);
      }
      try {
        n = Math.multiplyExact(n, d);
      } catch (ArithmeticException e) {
        throw new IllegalArgumentException(
            "tensor " + name + ": element count of shape " + shape + " overflows", e);
      }
    }
  }

  /** @return the number of elements (1 for a scalar, 0 if any dimension is 0) */
  public long numel() {
    long n = 1;
    for (long d : shape) {
      n *= d; // cannot overflow: checked in the constructor
    }
    return n;
  }

  /** @return the number of dimensions */
  public int rank() {
    return shape.size();
  }

  /** @return a new array with the shape */
  public long[] dims() {
    long[] dims = new long[shape.size()];
    for (int i = 0; i < dims.length; i++) {
      dims[i] = shape.get(i);
    }
    return dims;
  }

  /** @return the size of the data in bytes ({@code end - begin}) */
  public long byteLength() {
    return end - begin;
  }

  @Override
  public String toString() {
    return name + " " + dtype + " " + shape + " @[" + begin + ", " + end + ")";
  }
}
