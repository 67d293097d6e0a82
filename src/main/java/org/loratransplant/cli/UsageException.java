package org.loratransplant.cli;

/** A command line that cannot be run: printed with the command's usage, exit status 2. */
public final class UsageException extends RuntimeException {
  public UsageException(String message) {
    super(message);
  }
}
