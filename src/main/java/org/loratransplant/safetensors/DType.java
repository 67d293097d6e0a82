package org.loratransplant.safetensors;

/**
 * Element types of safetensors tensors, under their names in the file header.
 *
 * <p>Only the types Llama-family checkpoints and PEFT adapters use are supported; a header
 * naming any other type (e.g. {@code F8_E4M3}, {@code U32}) is rejected when the file is opened.
 */
public enum DType {
  F64(8, 13),
  F32(4, 11),
  F16(2, 7),
  BF16(2, 8),
  I64(8, 14),
  I32(4, 9),
  I16(2, 5),
  I8(1, 2),
  U8(1, 1),
  BOOL(1, 0);

  private final int byteSize;
  /**
   * Position of this type in the reference implementation's {@code Dtype} enum (safetensors
   * crate, {@code tensor.rs}), whose derived ordering the writer sorts by, descending, to lay out
   * the data section exactly as the Python library does. Gaps are types we do not support.
   */
  private final int referenceOrder;

  DType(int byteSize, int referenceOrder) {
    this.byteSize = byteSize;
    this.referenceOrder = referenceOrder;
  }

  /** @return bytes per element */
  public int byteSize() {
    return byteSize;
  }

  /** @return whether {@link SafeTensorsFile#readFloat32} can convert this type to float */
  public boolean isFloatingPoint() {
    return this == F64 || this == F32 || this == F16 || this == BF16;
  }

  int referenceOrder() {
    return referenceOrder;
  }

  /**
   * @param name a dtype as written in a safetensors header, e.g. {@code "BF16"} (case-sensitive,
   *     as the format is)
   * @return the type, or {@code null} when the name is not a supported type
   */
  public static DType fromName(String name) {
    if (name == null) {
      return null;
    }
    for (DType t : values()) {
      if (t.name().equals(name)) {
        return t;
      }
    }
    return null;
  }
}
