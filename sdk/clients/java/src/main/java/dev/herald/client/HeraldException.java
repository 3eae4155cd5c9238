package dev.herald.client;

import java.time.Duration;
import java.util.Optional;

/**
 * The gateway answered with an error status. {@link #code()}, {@link #getMessage()} and {@link #field()}
 * come from the error body {@code {"error": {"code", "message", "field"}}}; {@code code} and {@code field}
 * are null when the answer had no such body (a proxy's error page), the message is then its text.
 */
public class HeraldException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final int status;
  private final String code;
  private final String field;
  private final Duration retryAfter;

  public HeraldException(int status, String code, String message, String field, Duration retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
    this.retryAfter = retryAfter;
  }

  /** The HTTP status. */
  public int status() {
    return status;
  }

  /** A stable, machine-readable code such as {@code invalid_field}; null without the gateway's error body. */
  public String code() {
    return code;
  }

  /** The request part at fault ({@code recipients[3].to}, {@code Idempotency-Key}); null when none. */
  public String field() {
    return field;
  }

  /** The Retry-After header (the gateway sends it with 503), when there was one. */
  public Optional<Duration> retryAfter() {
    return Optional.ofNullable(retryAfter);
  }

  @Override
  public String toString() {
    return "HTTP " + status + " " + (code == null ? "error" : code) + ": " + getMessage() + (field == null ? "" : " (field " + field + ")");
  }
}
