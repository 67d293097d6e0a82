package org.loratransplant.safetensors;

import java.util.Arrays;

/**
 * One tensor's header entry. {@code begin}/{@code end} are byte offsets relative to the start of
 * the data section (after the header), as the format defines them.
 */
public record TensorInfo(String name, DType dtype, long[] shape, long begin, long end) {

  public TensorInfo {
    shape = shape.clone();
  }

  @Override
  public long[] shape() {
    return shape.clone();
  }

  public long numel() {
    long n = 1;
    for (long d : shape) {
      n *= d;
    }
    return n;
  }

  @Override
  public String toString() {
    return name + " " + dtype + Arrays.toString(shape);
  }
}
