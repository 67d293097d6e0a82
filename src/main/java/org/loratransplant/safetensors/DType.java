package org.loratransplant.safetensors;

/** The element types of the safetensors format, with their size in bytes. */
public enum DType {
  F64(8), F32(4), F16(2), BF16(2), I64(8), I32(4), I16(2), I8(1), U8(1), BOOL(1);

  private final int size;

  DType(int size) {
    this.size = size;
  }

  public int size() {
    return size;
  }

  /** The type named {@code name} in a header, or {@code null} if unknown. */
  public static DType fromName(String name) {
    for (DType d : values()) {
      if (d.name().equals(name)) {
        return d;
      }
    }
    return null;
  }
}
