package dev.herald.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.herald.client.model.AckBody;
import dev.herald.client.model.DeliveryRecord;
import dev.herald.client.model.DeliveryStatus;
import dev.herald.client.model.IncidentView;
import dev.herald.client.model.TriggerLevel;
import dev.herald.client.model.MessageStatus;
import dev.herald.client.model.RecipientSpec;
import dev.herald.client.model.SendAccepted;
import dev.herald.client.model.SendRequest;
import dev.herald.client.model.SendRequestSendAt;
import dev.herald.client.model.Trigger;
import dev.herald.client.model.TriggerAccepted;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Supplier;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * The client against the real herald-gateway, started by the shared test bed:
 * {@code python3 ../with_testbed.py -- mvn test}. Skipped without HERALD_URL.
 */
class GatewayTest {
  private static String url;
  private static String key;

  @BeforeAll
  static void testbed() {
    url = System.getenv("HERALD_URL");
    key = System.getenv("HERALD_KEY");
    assumeTrue(url != null, "no test bed: run under ../with_testbed.py");
  }

  private static HeraldClient client(String apiKey) {
    return HeraldClient.builder(url, apiKey).build();
  }

  private static <T> T waitFor(String what, Supplier<T> check) throws InterruptedException {
    long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
    for (;;) {
      T value = check.get();
      if (value != null) {
        return value;
      }
      assertTrue(System.nanoTime() < deadline, "timed out waiting for " + what);
      Thread.sleep(100);
    }
  }

  private static MessageStatus waitSent(HeraldClient herald, String id) throws InterruptedException {
    var done = EnumSet.of(DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.READ);
    return waitFor("message " + id + " to be sent", () -> {
      MessageStatus view = herald.getMessage(id);
      return view.getDeliveries().stream().map(DeliveryRecord::getStatus).allMatch(done::contains) ? view : null;
    });
  }

  /** The webhook bodies the demo inbox received, oldest first. */
  private static List<JsonNode> inbox() {
    try {
      HttpRequest request = HttpRequest.newBuilder(URI.create(url + "/demo/inbox")).build();
      JsonNode all = new ObjectMapper().readTree(HttpClient.newHttpClient().send(request, HttpResponse.BodyHandlers.ofString()).body());
      List<JsonNode> bodies = new ArrayList<>();
      all.path("received").forEach(item -> bodies.add(item.path("body")));
      return bodies;
    } catch (IOException | InterruptedException e) {
      throw new AssertionError("the demo inbox", e);
    }
  }

  private static HeraldException refused(Executable call) {
    return assertThrows(HeraldException.class, call);
  }

  private static void assertError(HeraldException e, int status, String code, String field) {
    assertEquals(Arrays.asList(status, code, field), Arrays.asList(e.status(), e.code(), e.field()), e.toString());
  }

  @Test
  void sendsAndReadsTheStatus() throws InterruptedException {
    HeraldClient herald = client(key);
    SendAccepted answer = herald.sendMessage(new SendRequest().channel("webhook").template("welcome")
        .addRecipientsItem(new RecipientSpec().to("ann").variables(Map.of("name", "Ann")))
        .addRecipientsItem(new RecipientSpec().to("bob").variables(Map.of("name", "Bob")))
        .putMetadataItem("order", "A-1"));
    assertEquals("accepted", answer.getStatus().getValue());
    assertEquals(2, answer.getRecipients().intValue());
    MessageStatus view = waitSent(herald, answer.getId());
    assertEquals(answer.getId(), view.getId());
    assertEquals(java.util.Set.of("sent"), view.getSummary().keySet());
    assertEquals(2, view.getSummary().get("sent").intValue());
    Map<String, String> texts = new TreeMap<>();
    for (JsonNode b : inbox()) {
      if (b.path("id").asText().startsWith(answer.getId() + ".")) {
        texts.put(b.path("recipient").asText(), b.path("text").asText());
      }
    }
    assertEquals(Map.of("ann", "Hello Ann, welcome to Herald.", "bob", "Hello Bob, welcome to Herald."), texts);
  }

  @Test
  void sendAtHoldsTheMessage() throws InterruptedException {
    HeraldClient herald = client(key);
    long at = System.currentTimeMillis() + 2000;
    SendAccepted answer = herald.sendMessage(new SendRequest().channel("webhook").template("welcome")
        .addRecipientsItem(new RecipientSpec().to("dora")).sendAt(new SendRequestSendAt(at)));
    assertEquals(Long.valueOf(at), answer.getSendAt());
    assertEquals(DeliveryStatus.QUEUED, herald.getMessage(answer.getId()).getDeliveries().get(0).getStatus(), "held until send_at");
    waitSent(herald, answer.getId());
  }

  @Test
  void anIdempotencyKeyReturnsTheFirstAnswer() throws InterruptedException {
    HeraldClient herald = client(key);
    SendRequest request = new SendRequest().channel("webhook").template("welcome").addRecipientsItem(new RecipientSpec().to("fay"));
    SendAccepted first = herald.sendMessage(request, "java-order-42");
    assertEquals(first.getId(), herald.sendMessage(request, "java-order-42").getId());
    waitSent(herald, first.getId());

    assertError(refused(() -> herald.sendMessage(request.putMetadataItem("changed", "yes"), "java-order-42")), 409, "idempotency_key_reused", "Idempotency-Key");
    var bad = assertThrows(IllegalArgumentException.class, () -> herald.sendMessage(request, "has a space"));
    assertTrue(bad.getMessage().contains("idempotency key"), bad.getMessage());
  }

  @Test
  void errorsCarryCodeAndField() {
    HeraldClient herald = client(key);
    Supplier<SendRequest> base = () -> new SendRequest().channel("webhook").template("welcome").recipients(new ArrayList<>());
    assertError(refused(() -> herald.sendMessage(base.get().channel("carrier-pigeon").addRecipientsItem(new RecipientSpec().to("ann")))), 422, "unknown_channel", "channel");
    assertError(refused(() -> herald.sendMessage(base.get())), 400, "invalid_field", "recipients");
    assertError(refused(() -> herald.sendMessage(base.get().template("no-such").addRecipientsItem(new RecipientSpec().to("ann")))), 422, "unknown_template", "template");
    assertError(refused(() -> herald.getMessage("no-such-message")), 404, "not_found", "id");
    HeraldException unauthenticated = refused(() -> client("wrong-key").getMessage("x"));
    assertError(unauthenticated, 401, "unauthenticated", null);
    assertFalse(unauthenticated.toString().contains("wrong-key"));
  }

  @Test
  void triggersReadsAndAcknowledgesAnIncident() throws InterruptedException {
    HeraldClient herald = client(System.getenv("HERALD_TIERED_KEY"));
    String action = System.getenv("HERALD_ACTION");
    Supplier<TriggerAccepted> trigger = () -> herald.triggerAction(action,
        new Trigger().level(TriggerLevel.URGENT).variables(Map.of("host", "db1")).dedupKey("java-disk-db1"), "java-alert-1");
    TriggerAccepted first = trigger.get();
    assertFalse(first.getDeduplicated());
    assertEquals(first.getId(), trigger.get().getId());

    IncidentView incident = waitFor("the first step", () -> {
      IncidentView i = herald.getIncident(first.getId());
      return i.getTimeline().stream().anyMatch(e -> e.getKind().equals("fired")) ? i : null;
    });
    assertEquals(List.of(action, "urgent", "open"), List.of(incident.getAction(), incident.getLevel().getValue(), incident.getState().getValue()));
    String text = waitFor("the webhook", () -> inbox().stream()
        .filter(b -> b.path("metadata").path("incident").asText().equals(first.getId()))
        .map(b -> b.path("text").asText()).findFirst().orElse(null));
    assertTrue(text.startsWith("Disk db1 is full"), text);

    assertEquals(List.of("oncall"), herald.ackIncident(first.getId(), new AckBody().recipient("oncall")).getAcknowledgedBy());
    var acked = herald.ackIncident(first.getId());
    assertEquals(List.of(first.getId(), "acknowledged"), List.of(acked.getId(), acked.getState().getValue()));
    assertEquals("acknowledged", herald.getIncident(first.getId()).getState().getValue());

    assertError(refused(() -> herald.getIncident("no-such-incident")), 404, "not_found", "id");
    assertError(refused(() -> herald.ackIncident("no-such-incident")), 404, "not_found", "id");
    assertEquals(404, refused(() -> client(key).getIncident(first.getId())).status());
  }

  @Test
  void noAnswerIsANetworkError() {
    HeraldClient offline = HeraldClient.builder(System.getenv("HERALD_CLOSED_URL"), key).retries(3).build();
    var e = assertThrows(HeraldNetworkException.class, () -> offline.getMessage("x"));
    assertFalse(e.getMessage().contains(key));
  }
}
