package org.loratransplant.task;

/** A task file that cannot be read; the message names the file and the row or line. */
public final class TaskFormatException extends RuntimeException {
  public TaskFormatException(String message) {
    super(message);
  }

  public TaskFormatException(String message, Throwable cause) {
    super(message, cause);
  }
}
