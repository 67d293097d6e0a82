package org.loratransplant.safetensors;

/**
 * A safetensors file, index or checkpoint directory is malformed, unsupported or unreadable.
 *
 * <p>Unchecked on purpose: callers are model-loading code and Spark tasks that cannot repair a
 * broken checkpoint, only report it, and checked exceptions do not cross Spark lambdas. The
 * message is the contract: it always names the file (or directory) and, where one is involved,
 * the tensor, so the report alone tells a user what to fix. Underlying I/O errors are kept as
 * the cause.
 */
public final class SafeTensorsException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  /** @param message what is wrong, naming the file and tensor */
  public SafeTensorsException(String message) {
    super(message);
  }

  /**
   * @param message what is wrong, naming the file and tensor
   * @param cause the underlying failure (usually an {@link java.io.IOException})
   */
  public SafeTensorsException(String message, Throwable cause) {
    super(message, cause);
  }
}
