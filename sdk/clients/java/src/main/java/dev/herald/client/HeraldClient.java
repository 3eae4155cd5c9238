package dev.herald.client;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.herald.client.model.AckResult;
import dev.herald.client.model.AckBody;
import dev.herald.client.model.IncidentView;
import dev.herald.client.model.JSON;
import dev.herald.client.model.MessageStatus;
import dev.herald.client.model.SendAccepted;
import dev.herald.client.model.SendRequest;
import dev.herald.client.model.Trigger;
import dev.herald.client.model.TriggerAccepted;
import java.io.IOException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Objects;
import java.util.regex.Pattern;

/**
 * A client of the Herald gateway's {@code /v1} API for one tenant's API key, on {@code java.net.http}.
 * The request and answer types ({@code dev.herald.client.model}) are generated from the gateway's
 * OpenAPI document. Thread-safe.
 *
 * <pre>{@code
 * HeraldClient herald = HeraldClient.builder("http://127.0.0.1:8080", apiKey).retries(2).build();
 * SendAccepted answer = herald.sendMessage(new SendRequest().channel("webhook").template("welcome")
 *     .addRecipientsItem(new RecipientSpec().to("ann")), "order-42-shipped");
 * MessageStatus view = herald.getMessage(answer.getId());
 * }</pre>
 *
 * <p>Errors: {@link HeraldException} (an error answer, with its status, code and field),
 * {@link HeraldNetworkException} (no answer), {@link IllegalArgumentException} (arguments the client
 * can tell are wrong, before anything is sent).
 */
public final class HeraldClient {
  /** A longer Retry-After is not waited for: the error goes to the caller, who can schedule the retry. */
  public static final Duration MAX_RETRY_WAIT = Duration.ofSeconds(30);
  /** The wait before a retry when a 429/503 has no Retry-After. */
  public static final Duration DEFAULT_RETRY_WAIT = Duration.ofSeconds(1);

  private static final Pattern VISIBLE_ASCII = Pattern.compile("[\\x21-\\x7e]+");
  private static final ObjectMapper MAPPER = JSON.getDefault().getMapper();

  private final String baseUrl;
  private final String apiKey;
  private final HttpClient http;
  private final Duration timeout;
  private final int retries;

  private HeraldClient(Builder b) {
    this.baseUrl = b.baseUrl;
    this.apiKey = b.apiKey;
    this.timeout = b.timeout;
    this.retries = b.retries;
    this.http = b.http != null ? b.http : HttpClient.newBuilder().connectTimeout(b.timeout).followRedirects(HttpClient.Redirect.NEVER).build();
  }

  /** A builder for the gateway at {@code baseUrl} (e.g. {@code http://127.0.0.1:8080}). */
  public static Builder builder(String baseUrl, String apiKey) {
    return new Builder(baseUrl, apiKey);
  }

  /** Configuration of a {@link HeraldClient}. */
  public static final class Builder {
    private final String baseUrl;
    private final String apiKey;
    private Duration timeout = Duration.ofSeconds(10);
    private int retries;
    private HttpClient http;

    private Builder(String baseUrl, String apiKey) {
      if (baseUrl == null || !baseUrl.matches("https?://[^/].*")) {
        throw new IllegalArgumentException("the base URL must be an http:// or https:// URL, e.g. http://127.0.0.1:8080");
      }
      if (apiKey == null || !VISIBLE_ASCII.matcher(apiKey).matches()) {
        // Never echo the key, not even a bad one.
        throw new IllegalArgumentException("the API key must be a non-empty string of visible ASCII characters");
      }
      this.baseUrl = baseUrl.replaceAll("/+$", "");
      this.apiKey = apiKey;
    }

    /** Bounds each HTTP exchange (default 10 s). */
    public Builder timeout(Duration timeout) {
      this.timeout = Objects.requireNonNull(timeout, "timeout");
      return this;
    }

    /**
     * How many times a 429 or 503 answer is retried (default 0), waiting Retry-After (at most
     * {@link #MAX_RETRY_WAIT}), for GETs and for POSTs that carry an idempotency key only; other
     * calls are never repeated.
     */
    public Builder retries(int retries) {
      if (retries < 0) {
        throw new IllegalArgumentException("retries must be 0 or more");
      }
      this.retries = retries;
      return this;
    }

    /** The HTTP client to use; keep its redirects off ({@code NEVER}, the default), or the API key goes along. */
    public Builder httpClient(HttpClient http) {
      this.http = Objects.requireNonNull(http, "httpClient");
      return this;
    }

    public HeraldClient build() {
      return new HeraldClient(this);
    }
  }

  /** POST /v1/messages: the answer comes once the message is durable. */
  public SendAccepted sendMessage(SendRequest request) {
    return sendMessage(request, null);
  }

  /**
   * POST /v1/messages with an {@code Idempotency-Key} (1-255 visible ASCII characters; null: none): a
   * repeat returns the first answer and sends nothing twice, and the call may be retried.
   */
  public SendAccepted sendMessage(SendRequest request, String idempotencyKey) {
    return call("POST", "/v1/messages", Objects.requireNonNull(request, "request"), idempotencyKey, SendAccepted.class);
  }

  /** GET /v1/messages/{id}: each delivery's status, a summary by status, the cost. */
  public MessageStatus getMessage(String id) {
    return call("GET", "/v1/messages/" + segment(id, "id"), null, null, MessageStatus.class);
  }

  /** POST /v1/actions/{id}/trigger: the answer names the incident. */
  public TriggerAccepted triggerAction(String actionId, Trigger trigger) {
    return triggerAction(actionId, trigger, null);
  }

  /** POST /v1/actions/{id}/trigger with an {@code Idempotency-Key} (null: none); see {@link #sendMessage(SendRequest, String)}. */
  public TriggerAccepted triggerAction(String actionId, Trigger trigger, String idempotencyKey) {
    String path = "/v1/actions/" + segment(actionId, "actionId") + "/trigger";
    return call("POST", path, Objects.requireNonNull(trigger, "trigger"), idempotencyKey, TriggerAccepted.class);
  }

  /** GET /v1/incidents/{id}: state, acknowledgements, fired steps, timeline. */
  public IncidentView getIncident(String id) {
    return call("GET", "/v1/incidents/" + segment(id, "id"), null, null, IncidentView.class);
  }

  /** POST /v1/incidents/{id}/ack: acknowledges the whole incident. Never retried. */
  public AckResult ackIncident(String id) {
    return ackIncident(id, new AckBody());
  }

  /** POST /v1/incidents/{id}/ack: the whole incident, or one recipient (a directory user id or an address). Never retried. */
  public AckResult ackIncident(String id, AckBody request) {
    return call("POST", "/v1/incidents/" + segment(id, "id") + "/ack", Objects.requireNonNull(request, "request"), null, AckResult.class);
  }

  @Override
  public String toString() {
    return "HeraldClient(" + baseUrl + ", retries=" + retries + ")"; // never the key
  }

  private <T> T call(String method, String path, Object body, String idempotencyKey, Class<T> answer) {
    if (idempotencyKey != null && (idempotencyKey.length() > 255 || !VISIBLE_ASCII.matcher(idempotencyKey).matches())) {
      throw new IllegalArgumentException("the idempotency key must be 1-255 visible ASCII characters (no spaces)");
    }
    HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(baseUrl + path))
        .timeout(timeout)
        .header("Authorization", "Bearer " + apiKey)
        .header("Accept", "application/json");
    if (body != null) {
      request.header("Content-Type", "application/json").method(method, HttpRequest.BodyPublishers.ofByteArray(encode(body)));
    } else {
      request.method(method, HttpRequest.BodyPublishers.noBody());
    }
    if (idempotencyKey != null) {
      request.header("Idempotency-Key", idempotencyKey);
    }
    boolean mayRepeat = method.equals("GET") || idempotencyKey != null;
    for (int attempt = 0; ; attempt++) {
      try {
        return once(request.build(), method + " " + path, answer);
      } catch (HeraldException e) {
        Duration wait = retryWait(e);
        if (!mayRepeat || attempt >= retries || wait == null) {
          throw e;
        }
        sleep(wait, method + " " + path);
      }
    }
  }

  private <T> T once(HttpRequest request, String op, Class<T> answer) {
    HttpResponse<byte[]> response;
    try {
      response = http.send(request, HttpResponse.BodyHandlers.ofByteArray());
    } catch (IOException e) {
      throw new HeraldNetworkException(op + ": no answer from " + baseUrl + ": " + e, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new HeraldNetworkException(op + ": interrupted", e);
    }
    if (response.statusCode() >= 300) {
      throw error(response);
    }
    try {
      return MAPPER.readValue(response.body(), answer);
    } catch (IOException e) {
      throw new HeraldException(response.statusCode(), null, "the gateway's answer does not decode: " + e.getMessage(), null, null);
    }
  }

  private HeraldException error(HttpResponse<byte[]> response) {
    String text = new String(response.body(), StandardCharsets.UTF_8).strip();
    String code = null;
    String field = null;
    String message = text.length() > 500 ? text.substring(0, 500) : text;
    try {
      JsonNode error = MAPPER.readTree(response.body()).path("error");
      if (error.path("code").isTextual()) {
        code = error.path("code").asText();
        message = error.path("message").asText("");
        field = error.path("field").isTextual() ? error.path("field").asText() : null;
      }
    } catch (IOException e) {
      // not the gateway's error body: keep the text
    }
    if (message.isEmpty()) {
      message = "HTTP " + response.statusCode();
    }
    Duration retryAfter = response.headers().firstValue("Retry-After").filter(v -> v.strip().matches("\\d{1,9}"))
        .map(v -> Duration.ofSeconds(Long.parseLong(v.strip()))).orElse(null);
    return new HeraldException(response.statusCode(), code, message.replace(apiKey, "[api key]"), field, retryAfter);
  }

  /** How long to wait before repeating after {@code e}; null: do not repeat. */
  private static Duration retryWait(HeraldException e) {
    if (e.status() != 429 && e.status() != 503) {
      return null;
    }
    Duration wait = e.retryAfter().orElse(DEFAULT_RETRY_WAIT);
    return wait.compareTo(MAX_RETRY_WAIT) <= 0 ? wait : null;
  }

  private static void sleep(Duration wait, String op) {
    try {
      Thread.sleep(wait.toMillis());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new HeraldNetworkException(op + ": interrupted while waiting to retry", e);
    }
  }

  private static byte[] encode(Object body) {
    try {
      return MAPPER.writeValueAsBytes(body);
    } catch (JsonProcessingException e) {
      throw new IllegalArgumentException("the request does not encode as JSON: " + e.getMessage(), e);
    }
  }

  private static String segment(String value, String name) {
    if (value == null || value.isEmpty()) {
      throw new IllegalArgumentException(name + " must be a non-empty string");
    }
    return URLEncoder.encode(value, StandardCharsets.UTF_8).replace("+", "%20");
  }
}
