package dev.herald.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpHandler;
import com.sun.net.httpserver.HttpServer;
import dev.herald.client.model.RecipientSpec;
import dev.herald.client.model.SendRequest;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** The client's own rules against a local stub server: retries, errors, redirects. */
class ClientTest {
  private static final String SENT = "{\"id\": \"m1\", \"status\": \"accepted\", \"recipients\": 1}";
  private static final String VIEW = "{\"id\": \"m1\", \"channel\": \"webhook\", \"deliveries\": [], \"summary\": {}, \"cost_minor\": 0}";
  private static final SendRequest MESSAGE = new SendRequest().channel("webhook").addRecipientsItem(new RecipientSpec().to("ann"));

  private HttpServer server;

  @AfterEach
  void stop() {
    if (server != null) {
      server.stop(0);
    }
  }

  /** Answers {@code status} (with {@code Retry-After} when not null) to the first {@code failures} requests, then 200 {@code ok}. */
  private static final class Stub implements HttpHandler {
    final int status;
    final int failures;
    final String retryAfter;
    final String ok;
    final AtomicInteger requests = new AtomicInteger();
    final AtomicReference<String> idempotencyKey = new AtomicReference<>();

    Stub(int status, int failures, String retryAfter, String ok) {
      this.status = status;
      this.failures = failures;
      this.retryAfter = retryAfter;
      this.ok = ok;
    }

    @Override
    public void handle(HttpExchange x) throws IOException {
      int n = requests.incrementAndGet();
      x.getRequestBody().readAllBytes();
      idempotencyKey.set(x.getRequestHeaders().getFirst("Idempotency-Key"));
      if (n <= failures) {
        if (retryAfter != null) {
          x.getResponseHeaders().set("Retry-After", retryAfter);
        }
        reply(x, status, "{\"error\": {\"code\": \"stub\", \"message\": \"attempt " + n + "\"}}");
      } else {
        reply(x, 200, ok);
      }
    }
  }

  private static void reply(HttpExchange x, int status, String body) throws IOException {
    byte[] raw = body.getBytes(StandardCharsets.UTF_8);
    x.sendResponseHeaders(status, raw.length);
    x.getResponseBody().write(raw);
    x.close();
  }

  private HeraldClient serve(HttpHandler handler, int retries) throws IOException {
    server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
    server.createContext("/", handler);
    server.start();
    return HeraldClient.builder("http://127.0.0.1:" + server.getAddress().getPort(), "secret-key").retries(retries).build();
  }

  @Test
  void retriesAnIdempotentPost() throws IOException {
    Stub stub = new Stub(503, 1, "0", SENT);
    assertEquals("m1", serve(stub, 2).sendMessage(MESSAGE, "k-1").getId());
    assertEquals(2, stub.requests.get());
    assertEquals("k-1", stub.idempotencyKey.get());
  }

  @Test
  void retriesAGetOn429() throws IOException {
    Stub stub = new Stub(429, 2, "0", VIEW);
    assertEquals("m1", serve(stub, 2).getMessage("m1").getId());
    assertEquals(3, stub.requests.get());
  }

  @Test
  void doesNotRetryAPostWithoutKeyNorAnAck() throws IOException {
    Stub stub = new Stub(503, 1, "0", SENT);
    HeraldClient herald = serve(stub, 3);
    HeraldException e = assertThrows(HeraldException.class, () -> herald.sendMessage(MESSAGE));
    assertEquals(503, e.status());
    assertEquals("stub", e.code());
    assertEquals("attempt 1", e.getMessage());
    assertEquals(Optional.of(Duration.ZERO), e.retryAfter());
    assertEquals(1, stub.requests.get());
    stub.requests.set(0);
    assertEquals(503, assertThrows(HeraldException.class, () -> herald.ackIncident("i1")).status());
    assertEquals(1, stub.requests.get());
  }

  @Test
  void retriesAreBounded() throws IOException {
    Stub off = new Stub(503, 1, "0", VIEW);
    assertThrows(HeraldException.class, () -> serve(off, 0).getMessage("m1"));
    assertEquals(1, off.requests.get(), "off by default");
    stop();

    Stub longWait = new Stub(503, 1, "120", VIEW);
    HeraldException e = assertThrows(HeraldException.class, () -> serve(longWait, 3).getMessage("m1"));
    assertEquals(Optional.of(Duration.ofSeconds(120)), e.retryAfter());
    assertEquals(1, longWait.requests.get(), "a Retry-After over MAX_RETRY_WAIT goes to the caller");
    stop();

    Stub many = new Stub(503, 5, "0", VIEW);
    assertEquals("attempt 3", assertThrows(HeraldException.class, () -> serve(many, 2).getMessage("m1")).getMessage());
    stop();

    Stub other = new Stub(500, 1, null, VIEW);
    assertEquals(500, assertThrows(HeraldException.class, () -> serve(other, 2).getMessage("m1")).status());
    assertEquals(1, other.requests.get(), "other statuses are not retried");
  }

  @Test
  void foreignErrorPagesAndRedirects() throws IOException {
    HeraldClient herald = serve(x -> {
      if (x.getRequestURI().getPath().endsWith("/redirect")) {
        x.getResponseHeaders().set("Location", "/elsewhere");
        reply(x, 302, "moved");
      } else {
        reply(x, 502, "bad gateway; you sent " + x.getRequestHeaders().getFirst("Authorization"));
      }
    }, 0);
    HeraldException e = assertThrows(HeraldException.class, () -> herald.getMessage("m1"));
    assertEquals(502, e.status());
    assertNull(e.code());
    assertNull(e.field());
    assertTrue(e.getMessage().contains("[api key]") && !e.getMessage().contains("secret-key"), e.getMessage());
    assertEquals(302, assertThrows(HeraldException.class, () -> herald.getMessage("redirect")).status());
    assertFalse(herald.toString().contains("secret-key"));
  }

  @Test
  void pathSegmentsAreEscaped() throws IOException {
    AtomicReference<String> path = new AtomicReference<>();
    HeraldClient herald = serve(x -> {
      path.set(x.getRequestURI().getRawPath());
      reply(x, 200, "{\"id\": \"a/b\", \"state\": \"acknowledged\", \"acknowledged_by\": []}");
    }, 0);
    herald.ackIncident("a/b?c d");
    assertEquals("/v1/incidents/a%2Fb%3Fc%20d/ack", path.get());
  }

  @Test
  void theBuilderChecksItsArguments() {
    for (String[] args : new String[][] {{"ftp://x", "k"}, {"127.0.0.1:8080", "k"}, {"http://x", ""}, {"http://x", "a key"}}) {
      var e = assertThrows(IllegalArgumentException.class, () -> HeraldClient.builder(args[0], args[1]));
      assertFalse(e.getMessage().contains("a key"));
    }
    assertThrows(IllegalArgumentException.class, () -> HeraldClient.builder("http://x", "k").retries(-1));
  }
}
