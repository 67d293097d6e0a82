package org.loratransplant.transfer;

import java.util.Arrays;
import java.util.stream.Collectors;

/** The training-free transfers (METHODS.md section 3), named as on the command line. */
public enum Method {
  /** PortLLM-style reuse: copy modules whose shapes match, report the rest. */
  DIRECT("direct"),
  /** Project onto the target weight's top-k singular subspaces; equal shapes only. */
  LORA_X("lora-x"),
  /** LoRA-Align + LoRA-Shift: map between source and target singular bases; any shapes. */
  CROSS_LORA("cross-lora");

  private final String cliName;

  Method(String cliName) {
    this.cliName = cliName;
  }

  public String cliName() {
    return cliName;
  }

  /** Parses a command-line name; the error lists the valid ones. */
  public static Method parse(String name) {
    for (Method m : values()) {
      if (m.cliName.equals(name)) {
        return m;
      }
    }
    throw new IllegalArgumentException("unknown transfer method '" + name + "' (one of "
        + Arrays.stream(values()).map(Method::cliName).collect(Collectors.joining(", ")) + ")");
  }
}
