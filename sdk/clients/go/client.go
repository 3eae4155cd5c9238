// Package herald is a client of the Herald gateway's /v1 API: send a message
// and read its status, trigger a tiered action, read and acknowledge the
// incident.
//
// The request and answer types (types.gen.go) are generated from the
// gateway's OpenAPI document, sdk/openapi/gateway.json, by ../generate.sh;
// this file is the hand-written transport: authentication, errors, retries.
package herald

//go:generate ../generate.sh go

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	// MaxRetryWait bounds the Retry-After a retry waits for; a longer one goes
	// to the caller as the error, who can schedule the retry.
	MaxRetryWait = 30 * time.Second
	// DefaultRetryWait is the wait before a retry when a 429/503 has no Retry-After.
	DefaultRetryWait = time.Second
)

// Client calls one gateway with one tenant's API key. It is safe for
// concurrent use.
type Client struct {
	baseURL string
	apiKey  string
	http    *http.Client
	timeout time.Duration
	retries int
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the http.Client to use (transport, proxy, TLS). The
// client uses a copy with redirects off (following one would carry the API
// key along: a 3xx is an *Error) and the timeout of WithTimeout, if given.
func WithHTTPClient(c *http.Client) Option {
	return func(cl *Client) { cl.http = c }
}

// WithTimeout bounds each HTTP exchange (default 10 s); ctx bounds the whole call.
func WithTimeout(d time.Duration) Option {
	return func(cl *Client) { cl.timeout = d }
}

// WithRetries sets how many times a 429 or 503 answer is retried (default 0),
// waiting Retry-After (at most MaxRetryWait), for GETs and for POSTs that carry
// an idempotency key only; other calls are never repeated.
func WithRetries(n int) Option {
	return func(cl *Client) { cl.retries = n }
}

// New returns a client of the gateway at baseURL (e.g. "http://127.0.0.1:8080").
func New(baseURL, apiKey string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("herald: base URL must be an http:// or https:// URL, e.g. http://127.0.0.1:8080")
	}
	if !visibleASCII(apiKey, 1<<16) {
		// Never echo the key, not even a bad one.
		return nil, errors.New("herald: the API key must be a non-empty string of visible ASCII characters")
	}
	c := &Client{baseURL: strings.TrimRight(baseURL, "/"), apiKey: apiKey, http: &http.Client{Timeout: 10 * time.Second}}
	for _, o := range opts {
		o(c)
	}
	if c.retries < 0 || c.timeout < 0 {
		return nil, errors.New("herald: retries and the timeout must not be negative")
	}
	hc := *c.http // a copy: the caller's client stays as it is
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if c.timeout > 0 {
		hc.Timeout = c.timeout
	}
	c.http = &hc
	return c, nil
}

// String never shows the API key.
func (c *Client) String() string {
	return fmt.Sprintf("herald.Client(%s, retries=%d)", c.baseURL, c.retries)
}

// CallOption configures one call.
type CallOption func(*call)

type call struct{ idempotencyKey string }

// WithIdempotencyKey sends the Idempotency-Key header (1-255 visible ASCII
// characters): a repeat returns the first answer and sends nothing twice, and
// the call may be retried (see WithRetries).
func WithIdempotencyKey(key string) CallOption {
	return func(c *call) { c.idempotencyKey = key }
}

// SendMessage posts a message (POST /v1/messages); the answer comes once it is durable.
func (c *Client) SendMessage(ctx context.Context, req SendRequest, opts ...CallOption) (*SendAccepted, error) {
	return exchange[SendAccepted](ctx, c, http.MethodPost, "/v1/messages", req, opts)
}

// GetMessage reads a message: each delivery's status, a summary by status, the cost.
func (c *Client) GetMessage(ctx context.Context, id string) (*MessageStatus, error) {
	return exchange[MessageStatus](ctx, c, http.MethodGet, "/v1/messages/"+url.PathEscape(id), nil, nil)
}

// TriggerAction triggers a tiered action (POST /v1/actions/{id}/trigger); the
// answer names the incident.
func (c *Client) TriggerAction(ctx context.Context, actionID string, req Trigger, opts ...CallOption) (*TriggerAccepted, error) {
	return exchange[TriggerAccepted](ctx, c, http.MethodPost, "/v1/actions/"+url.PathEscape(actionID)+"/trigger", req, opts)
}

// GetIncident reads an incident: state, acknowledgements, fired steps, timeline.
func (c *Client) GetIncident(ctx context.Context, id string) (*IncidentView, error) {
	return exchange[IncidentView](ctx, c, http.MethodGet, "/v1/incidents/"+url.PathEscape(id), nil, nil)
}

// AckIncident acknowledges an incident: the whole of it (req.Recipient nil),
// or for one recipient (a directory user id or an address). It is never retried.
func (c *Client) AckIncident(ctx context.Context, id string, req AckBody) (*AckResult, error) {
	return exchange[AckResult](ctx, c, http.MethodPost, "/v1/incidents/"+url.PathEscape(id)+"/ack", req, nil)
}

// Error is an error answer of the gateway. Code, Message and Field come from
// the body {"error": {"code", "message", "field"}}; Code and Field are empty
// when the answer had no such body (a proxy's error page), Message is then its text.
type Error struct {
	Status  int
	Code    string
	Message string
	Field   string
	// RetryAfter is the Retry-After header (the gateway sends it with 503), 0 when absent.
	RetryAfter time.Duration

	hasRetryAfter bool
}

func (e *Error) Error() string {
	code := e.Code
	if code == "" {
		code = "error"
	}
	s := fmt.Sprintf("herald: HTTP %d %s: %s", e.Status, code, e.Message)
	if e.Field != "" {
		s += " (field " + e.Field + ")"
	}
	return s
}

// NetworkError: the gateway could not be reached or did not answer in time.
// Whether a POST took effect is unknown: repeat it with the same idempotency key.
type NetworkError struct {
	Op  string // e.g. "POST /v1/messages"
	Err error
}

func (e *NetworkError) Error() string { return fmt.Sprintf("herald: %s: no answer: %v", e.Op, e.Err) }
func (e *NetworkError) Unwrap() error { return e.Err }

// exchange does one API call and decodes its answer into a T.
func exchange[T any](ctx context.Context, c *Client, method, path string, body any, opts []CallOption) (*T, error) {
	var out T
	if err := c.do(ctx, method, path, body, &out, opts); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *Client) do(ctx context.Context, method, path string, body, out any, opts []CallOption) error {
	var o call
	for _, f := range opts {
		f(&o)
	}
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return fmt.Errorf("herald: %s %s: encoding the request: %w", method, path, err)
		}
	}
	if strings.HasSuffix(path, "/") || strings.Contains(path, "//") {
		return errors.New("herald: an id must not be empty")
	}
	if o.idempotencyKey != "" && !visibleASCII(o.idempotencyKey, 255) {
		return errors.New("herald: the idempotency key must be 1-255 visible ASCII characters (no spaces)")
	}
	mayRepeat := method == http.MethodGet || o.idempotencyKey != ""
	for attempt := 0; ; attempt++ {
		err := c.once(ctx, method, path, raw, o.idempotencyKey, out)
		var e *Error
		if err == nil || !mayRepeat || attempt >= c.retries || !errors.As(err, &e) {
			return err
		}
		wait, ok := retryWait(e)
		if !ok {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err // the last answer says more than "context canceled"
		case <-t.C:
		}
	}
}

func (c *Client) once(ctx context.Context, method, path string, body []byte, idempotencyKey string, out any) error {
	op := method + " " + path
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, reader)
	if err != nil {
		return fmt.Errorf("herald: %s: %w", op, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.apiKey)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", idempotencyKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return &NetworkError{Op: op, Err: scrub(err, c.apiKey)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return &NetworkError{Op: op, Err: err}
	}
	if resp.StatusCode >= 300 {
		return c.errorOf(resp, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return &Error{Status: resp.StatusCode, Message: "the gateway's answer does not decode: " + err.Error()}
	}
	return nil
}

func (c *Client) errorOf(resp *http.Response, raw []byte) *Error {
	e := &Error{Status: resp.StatusCode}
	e.RetryAfter, e.hasRetryAfter = retryAfter(resp.Header.Get("Retry-After"))
	var b ErrorBody
	if json.Unmarshal(raw, &b) == nil && b.Error.Code != "" {
		e.Code, e.Message = b.Error.Code, b.Error.Message
		if b.Error.Field != nil {
			e.Field = *b.Error.Field
		}
	} else {
		e.Message = strings.TrimSpace(string(raw))
		if len(e.Message) > 500 {
			e.Message = e.Message[:500]
		}
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	e.Message = strings.ReplaceAll(e.Message, c.apiKey, "[api key]")
	return e
}

// retryWait is how long to wait before repeating after e; false: do not repeat.
func retryWait(e *Error) (time.Duration, bool) {
	if e.Status != http.StatusTooManyRequests && e.Status != http.StatusServiceUnavailable {
		return 0, false
	}
	if !e.hasRetryAfter {
		return DefaultRetryWait, true
	}
	return e.RetryAfter, e.RetryAfter <= MaxRetryWait
}

// retryAfter reads Retry-After in seconds; false when absent or not a number of seconds.
func retryAfter(v string) (time.Duration, bool) {
	s, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
	return time.Duration(s) * time.Second, err == nil
}

func visibleASCII(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// scrub keeps the API key out of an error's text.
func scrub(err error, key string) error {
	if strings.Contains(err.Error(), key) {
		return errors.New(strings.ReplaceAll(err.Error(), key, "[api key]"))
	}
	return err
}

// SendAt is the SendRequest.SendAt for t, sent as Unix milliseconds.
func SendAt(t time.Time) *SendRequest_SendAt {
	var at SendRequest_SendAt
	_ = at.FromSendRequestSendAt1(t.UnixMilli()) // marshalling an int64 cannot fail
	return &at
}
