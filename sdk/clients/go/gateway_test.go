package herald_test

// The client against the real herald-gateway, started by the shared test bed:
//   python3 ../with_testbed.py -- go test ./...
// Without HERALD_URL (no test bed) these tests are skipped.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	herald "github.com/herald-dev/herald/sdk/clients/go"
)

type bed struct{ url, key, tieredKey, action, closedURL string }

func testbed(t *testing.T) bed {
	t.Helper()
	b := bed{os.Getenv("HERALD_URL"), os.Getenv("HERALD_KEY"), os.Getenv("HERALD_TIERED_KEY"), os.Getenv("HERALD_ACTION"), os.Getenv("HERALD_CLOSED_URL")}
	if b.url == "" {
		t.Skip("no test bed: run under ../with_testbed.py")
	}
	return b
}

func client(t *testing.T, url, key string, opts ...herald.Option) *herald.Client {
	t.Helper()
	c, err := herald.New(url, key, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func ptr[T any](v T) *T { return &v }

// waitFor polls check every 100 ms until it returns true (at most 30 s).
func waitFor(t *testing.T, what string, check func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !check(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func waitSent(t *testing.T, c *herald.Client, id string) *herald.MessageStatus {
	t.Helper()
	var view *herald.MessageStatus
	waitFor(t, "message "+id+" to be sent", func() bool {
		var err error
		if view, err = c.GetMessage(ctx(t), id); err != nil {
			t.Fatal(err)
		}
		for _, d := range view.Deliveries {
			if d.Status != herald.DeliveryStatusSent && d.Status != herald.DeliveryStatusDelivered && d.Status != herald.DeliveryStatusRead {
				return false
			}
		}
		return true
	})
	return view
}

// inbox is what the demo inbox received: the webhook bodies, oldest first.
type webhook struct {
	ID        string            `json:"id"`
	Recipient string            `json:"recipient"`
	Subject   string            `json:"subject"`
	Text      string            `json:"text"`
	Metadata  map[string]string `json:"metadata"`
}

func inbox(t *testing.T, url string) []webhook {
	t.Helper()
	resp, err := http.Get(url + "/demo/inbox")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Received []struct{ Body webhook } `json:"received"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	bodies := make([]webhook, len(got.Received))
	for i, r := range got.Received {
		bodies[i] = r.Body
	}
	return bodies
}

func apiError(t *testing.T, err error) *herald.Error {
	t.Helper()
	var e *herald.Error
	if !errors.As(err, &e) {
		t.Fatalf("want a *herald.Error, got %v", err)
	}
	return e
}

func TestSendReadStatus(t *testing.T) {
	b := testbed(t)
	c := client(t, b.url, b.key)
	answer, err := c.SendMessage(ctx(t), herald.SendRequest{
		Channel:  "webhook",
		Template: ptr("welcome"),
		Recipients: []herald.RecipientSpec{
			{To: "ann", Variables: &map[string]any{"name": "Ann"}},
			{To: "bob", Variables: &map[string]any{"name": "Bob"}},
		},
		Metadata: &map[string]string{"order": "A-1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if answer.Status != "accepted" || answer.Recipients != 2 {
		t.Fatalf("answer %+v", answer)
	}
	view := waitSent(t, c, answer.Id)
	if view.Id != answer.Id || view.Summary["sent"] != 2 {
		t.Fatalf("view %+v", view)
	}
	texts := map[string]string{}
	for _, w := range inbox(t, b.url) {
		if strings.HasPrefix(w.ID, answer.Id+".") {
			texts[w.Recipient] = w.Text
		}
	}
	if texts["ann"] != "Hello Ann, welcome to Herald." || texts["bob"] != "Hello Bob, welcome to Herald." {
		t.Fatalf("inbox %v", texts)
	}
}

func TestIdempotencyKey(t *testing.T) {
	b := testbed(t)
	c := client(t, b.url, b.key)
	req := herald.SendRequest{Channel: "webhook", Template: ptr("welcome"), Recipients: []herald.RecipientSpec{{To: "fay"}}}
	first, err := c.SendMessage(ctx(t), req, herald.WithIdempotencyKey("go-order-42"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.SendMessage(ctx(t), req, herald.WithIdempotencyKey("go-order-42"))
	if err != nil || again.Id != first.Id {
		t.Fatalf("repeat: %+v, %v; first %+v", again, err, first)
	}
	waitSent(t, c, first.Id)

	req.Metadata = &map[string]string{"changed": "yes"}
	_, err = c.SendMessage(ctx(t), req, herald.WithIdempotencyKey("go-order-42"))
	if e := apiError(t, err); e.Status != 409 || e.Code != "idempotency_key_reused" || e.Field != "Idempotency-Key" {
		t.Fatalf("reused key: %#v", e)
	}
	if _, err := c.SendMessage(ctx(t), req, herald.WithIdempotencyKey("has a space")); err == nil || !strings.Contains(err.Error(), "idempotency key") {
		t.Fatalf("bad key: %v", err)
	}
}

func TestErrorsCarryCodeAndField(t *testing.T) {
	b := testbed(t)
	c := client(t, b.url, b.key)
	cases := []struct {
		req         herald.SendRequest
		status      int
		code, field string
	}{
		{herald.SendRequest{Channel: "carrier-pigeon", Template: ptr("welcome"), Recipients: []herald.RecipientSpec{{To: "ann"}}}, 422, "unknown_channel", "channel"},
		{herald.SendRequest{Channel: "webhook", Template: ptr("welcome"), Recipients: []herald.RecipientSpec{}}, 400, "invalid_field", "recipients"},
		{herald.SendRequest{Channel: "webhook", Template: ptr("no-such"), Recipients: []herald.RecipientSpec{{To: "ann"}}}, 422, "unknown_template", "template"},
	}
	for _, tc := range cases {
		_, err := c.SendMessage(ctx(t), tc.req)
		if e := apiError(t, err); e.Status != tc.status || e.Code != tc.code || e.Field != tc.field || e.Message == "" {
			t.Errorf("%+v: got %#v", tc.req, e)
		}
	}
	_, err := c.GetMessage(ctx(t), "no-such-message")
	if e := apiError(t, err); e.Status != 404 || e.Code != "not_found" || e.Field != "id" {
		t.Errorf("missing message: %#v", e)
	}
	_, err = client(t, b.url, "wrong-key").GetMessage(ctx(t), "x")
	if e := apiError(t, err); e.Status != 401 || e.Code != "unauthenticated" || strings.Contains(e.Error(), "wrong-key") {
		t.Errorf("wrong key: %#v", e)
	}
}

func TestTriggerReadAcknowledge(t *testing.T) {
	b := testbed(t)
	c := client(t, b.url, b.tieredKey)
	trigger := func() *herald.TriggerAccepted {
		req := herald.Trigger{Level: "urgent", Variables: &map[string]any{"host": "db1"}, DedupKey: ptr("go-disk-db1")}
		a, err := c.TriggerAction(ctx(t), b.action, req, herald.WithIdempotencyKey("go-alert-1"))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	first := trigger()
	if first.Deduplicated {
		t.Fatalf("first trigger: %+v", first)
	}
	if again := trigger(); again.Id != first.Id {
		t.Fatalf("same key, other incident: %+v vs %+v", again, first)
	}
	var incident *herald.IncidentView
	waitFor(t, "the first step", func() bool {
		var err error
		if incident, err = c.GetIncident(ctx(t), first.Id); err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(incident.Timeline, func(e herald.TimelineEvent) bool { return e.Kind == "fired" })
	})
	if incident.Action != b.action || incident.Level != "urgent" || incident.State != "open" {
		t.Fatalf("incident %+v", incident)
	}
	waitFor(t, "the webhook", func() bool {
		return slices.ContainsFunc(inbox(t, b.url), func(w webhook) bool {
			return w.Metadata["incident"] == first.Id && strings.HasPrefix(w.Text, "Disk db1 is full")
		})
	})

	one, err := c.AckIncident(ctx(t), first.Id, herald.AckBody{Recipient: ptr("oncall")})
	if err != nil || !slices.Equal(one.AcknowledgedBy, []string{"oncall"}) {
		t.Fatalf("ack oncall: %+v, %v", one, err)
	}
	all, err := c.AckIncident(ctx(t), first.Id, herald.AckBody{})
	if err != nil || all.Id != first.Id || all.State != "acknowledged" {
		t.Fatalf("ack: %+v, %v", all, err)
	}
	if incident, err = c.GetIncident(ctx(t), first.Id); err != nil || incident.State != "acknowledged" {
		t.Fatalf("after the ack: %+v, %v", incident, err)
	}

	_, err = c.TriggerAction(ctx(t), b.action, herald.Trigger{Level: "critical"})
	if e := apiError(t, err); e.Status != 400 || e.Code != "invalid_field" || e.Field != "level" {
		t.Errorf("bad level: %#v", e)
	}
	_, err = client(t, b.url, b.key).GetIncident(ctx(t), first.Id)
	if e := apiError(t, err); e.Status != 404 {
		t.Errorf("another tenant's incident: %#v", e)
	}
}

func TestNetworkError(t *testing.T) {
	b := testbed(t)
	_, err := client(t, b.closedURL, b.key, herald.WithRetries(3)).GetMessage(ctx(t), "x")
	var ne *herald.NetworkError
	if !errors.As(err, &ne) || strings.Contains(err.Error(), b.key) {
		t.Fatalf("want a *herald.NetworkError without the key, got %v", err)
	}
}

func TestSendAtHoldsTheMessage(t *testing.T) {
	b := testbed(t)
	c := client(t, b.url, b.key)
	at := time.Now().Add(2 * time.Second)
	answer, err := c.SendMessage(ctx(t), herald.SendRequest{
		Channel: "webhook", Template: ptr("welcome"), Recipients: []herald.RecipientSpec{{To: "dora"}}, SendAt: herald.SendAt(at),
	})
	if err != nil {
		t.Fatal(err)
	}
	if answer.SendAt == nil || *answer.SendAt != at.UnixMilli() {
		t.Fatalf("send_at of the answer: %+v, want %d", answer, at.UnixMilli())
	}
	view, err := c.GetMessage(ctx(t), answer.Id)
	if err != nil || view.Deliveries[0].Status != herald.DeliveryStatusQueued {
		t.Fatalf("held until send_at: %+v, %v", view, err)
	}
	waitSent(t, c, answer.Id)
}
