package org.loratransplant.model;

/** A model directory that cannot be used: the message names the file and the field or tensor. */
public final class ModelConfigException extends RuntimeException {
  public ModelConfigException(String message) {
    super(message);
  }

  public ModelConfigException(String message, Throwable cause) {
    super(message, cause);
  }
}
