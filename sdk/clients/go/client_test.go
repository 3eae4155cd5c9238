package herald_test

// The client's own rules against a local stub server: retries, errors, redirects.

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	herald "github.com/herald-dev/herald/sdk/clients/go"
)

// stub answers `status` (with Retry-After `retryAfter` when not empty) to the
// first `failures` requests, then 200 with `ok`; it counts the requests and
// keeps the last Idempotency-Key.
type stub struct {
	status, failures   int
	retryAfter, ok     string
	requests           atomic.Int32
	lastIdempotencyKey atomic.Value
}

func (s *stub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := int(s.requests.Add(1))
	s.lastIdempotencyKey.Store(r.Header.Get("Idempotency-Key"))
	w.Header().Set("Content-Type", "application/json")
	if n <= s.failures {
		if s.retryAfter != "" {
			w.Header().Set("Retry-After", s.retryAfter)
		}
		w.WriteHeader(s.status)
		fmt.Fprintf(w, `{"error": {"code": "stub", "message": "attempt %d"}}`, n)
		return
	}
	fmt.Fprint(w, s.ok)
}

func serve(t *testing.T, h http.Handler, opts ...herald.Option) *herald.Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return client(t, srv.URL, "secret-key", opts...)
}

const sent = `{"id": "m1", "status": "accepted", "recipients": 1}`

var message = herald.SendRequest{Channel: "webhook", Recipients: []herald.RecipientSpec{{To: "ann"}}}

func TestRetriesAnIdempotentPost(t *testing.T) {
	s := &stub{status: 503, failures: 1, retryAfter: "0", ok: sent}
	answer, err := serve(t, s, herald.WithRetries(2)).SendMessage(context.Background(), message, herald.WithIdempotencyKey("k-1"))
	if err != nil || answer.Id != "m1" || s.requests.Load() != 2 || s.lastIdempotencyKey.Load() != "k-1" {
		t.Fatalf("answer %+v, err %v, %d requests", answer, err, s.requests.Load())
	}
}

func TestRetriesAGetOn429(t *testing.T) {
	s := &stub{status: 429, failures: 2, retryAfter: "0", ok: `{"id": "m1", "channel": "webhook", "deliveries": [], "summary": {}, "cost_minor": 0}`}
	view, err := serve(t, s, herald.WithRetries(2)).GetMessage(context.Background(), "m1")
	if err != nil || view.Id != "m1" || s.requests.Load() != 3 {
		t.Fatalf("view %+v, err %v, %d requests", view, err, s.requests.Load())
	}
}

func TestDoesNotRetryAPostWithoutKeyNorAnAck(t *testing.T) {
	s := &stub{status: 503, failures: 1, retryAfter: "0", ok: sent}
	c := serve(t, s, herald.WithRetries(3))
	_, err := c.SendMessage(context.Background(), message)
	if e := apiError(t, err); e.Status != 503 || e.Code != "stub" || e.Message != "attempt 1" || s.requests.Load() != 1 {
		t.Fatalf("%#v after %d requests", e, s.requests.Load())
	}
	s.requests.Store(0)
	_, err = c.AckIncident(context.Background(), "i1", herald.AckBody{})
	if e := apiError(t, err); e.Status != 503 || s.requests.Load() != 1 {
		t.Fatalf("ack: %#v after %d requests", e, s.requests.Load())
	}
}

func TestRetryLimits(t *testing.T) {
	// Off by default.
	s := &stub{status: 503, failures: 1, retryAfter: "0", ok: sent}
	if _, err := serve(t, s).GetMessage(context.Background(), "m1"); apiError(t, err).Status != 503 || s.requests.Load() != 1 {
		t.Fatalf("retried without WithRetries: %d requests", s.requests.Load())
	}
	// A Retry-After over MaxRetryWait goes to the caller.
	s = &stub{status: 503, failures: 1, retryAfter: "120", ok: sent}
	_, err := serve(t, s, herald.WithRetries(3)).GetMessage(context.Background(), "m1")
	if e := apiError(t, err); e.RetryAfter != 120*time.Second || s.requests.Load() != 1 {
		t.Fatalf("%#v after %d requests", e, s.requests.Load())
	}
	// At most N retries.
	s = &stub{status: 503, failures: 5, retryAfter: "0", ok: sent}
	if _, err := serve(t, s, herald.WithRetries(2)).GetMessage(context.Background(), "m1"); apiError(t, err).Message != "attempt 3" {
		t.Fatalf("after %d requests: %v", s.requests.Load(), err)
	}
	// Other statuses are not retried.
	s = &stub{status: 500, failures: 1, ok: sent}
	if _, err := serve(t, s, herald.WithRetries(2)).GetMessage(context.Background(), "m1"); apiError(t, err).Status != 500 || s.requests.Load() != 1 {
		t.Fatalf("500 retried: %d requests", s.requests.Load())
	}
	// The context ends the wait.
	s = &stub{status: 503, failures: 1, retryAfter: "20", ok: sent}
	c, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := serve(t, s, herald.WithRetries(1)).GetMessage(c, "m1"); apiError(t, err).Status != 503 || time.Since(start) > 5*time.Second {
		t.Fatalf("%v after %v", err, time.Since(start))
	}
}

func TestForeignErrorPagesAndRedirects(t *testing.T) {
	c := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/messages/redirect") {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprintf(w, "bad gateway; you sent %s", r.Header.Get("Authorization"))
	}))
	_, err := c.GetMessage(context.Background(), "m1")
	if e := apiError(t, err); e.Status != 502 || e.Code != "" || e.Field != "" || strings.Contains(e.Message, "secret-key") || !strings.Contains(e.Message, "[api key]") {
		t.Fatalf("%#v", e)
	}
	_, err = c.GetMessage(context.Background(), "redirect")
	if e := apiError(t, err); e.Status != http.StatusFound {
		t.Fatalf("redirect followed: %v", err)
	}
	if s := fmt.Sprint(c); strings.Contains(s, "secret-key") {
		t.Fatalf("the key shows: %s", s)
	}
}

func TestPathSegmentsAreEscaped(t *testing.T) {
	var path atomic.Value
	c := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path.Store(r.URL.EscapedPath())
		fmt.Fprint(w, `{"id": "a/b", "state": "acknowledged", "acknowledged_by": []}`)
	}))
	if _, err := c.AckIncident(context.Background(), "a/b?c", herald.AckBody{}); err != nil || path.Load() != "/v1/incidents/a%2Fb%3Fc/ack" {
		t.Fatalf("%v, path %v", err, path.Load())
	}
}

func TestNewChecksItsArguments(t *testing.T) {
	for _, args := range [][2]string{{"ftp://x", "k"}, {"127.0.0.1:8080", "k"}, {"http://x", ""}, {"http://x", "a key"}} {
		if _, err := herald.New(args[0], args[1]); err == nil || strings.Contains(err.Error(), "a key") {
			t.Errorf("New(%q, …): %v", args[0], err)
		}
	}
	if _, err := herald.New("http://x", "k", herald.WithRetries(-1)); err == nil {
		t.Error("negative retries accepted")
	}
	c := client(t, "http://127.0.0.1:1", "k")
	if _, err := c.AckIncident(context.Background(), "", herald.AckBody{}); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty id: %v", err)
	}
	// The caller's http.Client is not changed.
	mine := &http.Client{}
	client(t, "http://x", "k", herald.WithHTTPClient(mine), herald.WithTimeout(time.Second))
	if mine.Timeout != 0 || mine.CheckRedirect != nil {
		t.Error("WithHTTPClient: the caller's client was changed")
	}
}
