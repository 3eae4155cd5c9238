package herald_test

import (
	"context"
	"errors"
	"log"
	"time"

	herald "github.com/herald-dev/herald/sdk/clients/go"
)

// The README's example; compiled by go vet and go test, not run.
func Example() {
	ctx := context.Background()
	apiKey, actionID := "…", "…"
	c, err := herald.New("http://127.0.0.1:8080", apiKey, herald.WithRetries(2), herald.WithTimeout(10*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	answer, err := c.SendMessage(ctx, herald.SendRequest{
		Channel:    "webhook",
		Template:   ptr("welcome"),
		Recipients: []herald.RecipientSpec{{To: "ann", Variables: &map[string]any{"name": "Ann"}}},
		SendAt:     herald.SendAt(time.Now().Add(5 * time.Minute)),
	}, herald.WithIdempotencyKey("order-42-shipped"))
	var e *herald.Error
	if errors.As(err, &e) {
		log.Fatalf("refused: %v", e) // herald: HTTP 422 unknown_template: … (field template)
	} else if err != nil {
		log.Fatal(err) // a *herald.NetworkError: repeat with the same idempotency key
	}
	view, _ := c.GetMessage(ctx, answer.Id)
	log.Print(view.Summary)

	incident, err := c.TriggerAction(ctx, actionID, herald.Trigger{Level: herald.TriggerLevelUrgent, DedupKey: ptr("disk-full-db1")},
		herald.WithIdempotencyKey("alert-7731"))
	if err == nil {
		_, _ = c.GetIncident(ctx, incident.Id)
		_, _ = c.AckIncident(ctx, incident.Id, herald.AckBody{})
	}
}
