package org.loratransplant.safetensors;

/** A checkpoint file that is malformed or unsupported; the message names the file and tensor. */
public final class SafeTensorsException extends RuntimeException {
  public SafeTensorsException(String message) {
    super(message);
  }

  public SafeTensorsException(String message, Throwable cause) {
    super(message, cause);
  }
}
