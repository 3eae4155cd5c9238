package dev.herald.client;

/**
 * The gateway could not be reached or did not answer in time (or the calling thread was interrupted).
 * Whether a POST took effect is unknown: repeat it with the same idempotency key.
 */
public class HeraldNetworkException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public HeraldNetworkException(String message, Throwable cause) {
    super(message, cause);
  }
}
