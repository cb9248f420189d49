// Package hooks posts a run, as JSON, to operators' HTTP endpoints at
// points of its life: before a destructive step, when it finishes, when
// it is escalated to a human.
//
// A blocking hook (before-destructive only) is a safety.Check: anything
// but a 2xx within its timeout holds the run, for change-ticket systems.
// The others are sent in the background (Notifier): a bounded queue, a
// few attempts with backoff, never delaying a run.
//
// Every request is a POST of a Payload:
//
//	{"event": "before-destructive", "hook": "change-ticket", "step": "drain",
//	 "sentAt": "2026-11-26T10:00:02Z", "run": { …the run as GET /api/v1/runs/ID shows it… }}
//
// with Content-Type application/json, X-Node-Healer-Event set to the
// event and, with bearer_token_file, an Authorization: Bearer header
// read from the file at every request (a rotated token is used at once;
// it is never logged). Redirects are not followed. A receiver should
// treat deliveries as at-least-once (key: run.id, event, step).
package hooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/node-healer/node-healer/internal/config"
	"github.com/node-healer/node-healer/internal/runbooks"
)

// Events a hook can be sent on.
const (
	BeforeDestructive = "before-destructive"
	RunFinished       = "run-finished"
	Escalated         = "escalated"
)

// Events lists every event.
var Events = []string{BeforeDestructive, RunFinished, Escalated}

// DefaultTimeout is a hook's timeout when the configuration sets none.
const DefaultTimeout = 10 * time.Second

// Payload is the body of every hook request.
type Payload struct {
	Event string `json:"event"`
	Hook  string `json:"hook"`
	// Step is the destructive step about to run (before-destructive).
	Step   string        `json:"step,omitempty"`
	SentAt time.Time     `json:"sentAt"`
	Run    *runbooks.Run `json:"run"`
}

// Hook is one configured endpoint.
type Hook struct {
	Name      string
	URL       string
	On        []string
	Blocking  bool
	Timeout   time.Duration
	TokenFile string
	// Client sends the requests (default: one that follows no redirect).
	Client *http.Client
}

// FromConfig builds the hooks of a configuration.
func FromConfig(cs []config.Hook) []*Hook {
	out := make([]*Hook, 0, len(cs))
	for _, c := range cs {
		out = append(out, &Hook{Name: c.Name, URL: c.URL, On: c.On, Blocking: c.Blocking,
			Timeout: time.Duration(c.Timeout), TokenFile: c.BearerTokenFile})
	}
	return out
}

// Wants reports whether the hook is sent on event.
func (h *Hook) Wants(event string) bool {
	for _, e := range h.On {
		if e == event {
			return true
		}
	}
	return false
}

func (h *Hook) timeout() time.Duration {
	if h.Timeout > 0 {
		return h.Timeout
	}
	return DefaultTimeout
}

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// Request results (the result label of node_healer_hook_requests_total).
const (
	ResultOK          = "ok"          // answered 2xx
	ResultHTTPError   = "http_error"  // answered something else
	ResultTimeout     = "timeout"     // no answer within the hook's timeout
	ResultUnreachable = "unreachable" // the request could not be made (connection refused, token file unreadable…)
	ResultDropped     = "dropped"     // never sent: the background queue was full
)

// Results lists every result label value.
var Results = []string{ResultOK, ResultHTTPError, ResultTimeout, ResultUnreachable, ResultDropped}

// answer is what one request came to.
type answer struct {
	result string
	code   int
	body   string // the first bytes of the body
	err    error
}

// reason is the human sentence for a non-2xx answer.
func (a answer) reason(h *Hook) string {
	switch a.result {
	case ResultHTTPError:
		if a.body == "" {
			return fmt.Sprintf("hook %s answered %d", h.Name, a.code)
		}
		return fmt.Sprintf("hook %s answered %d: %s", h.Name, a.code, a.body)
	case ResultTimeout:
		return fmt.Sprintf("hook %s did not answer within %s", h.Name, h.timeout())
	default:
		return fmt.Sprintf("hook %s could not be asked: %v", h.Name, a.err)
	}
}

// bodyShown is how much of a refusal's body goes into the hold reason.
const bodyShown = 200

// post sends body once, within the hook's timeout.
func (h *Hook) post(ctx context.Context, event string, body []byte) answer {
	ctx, cancel := context.WithTimeout(ctx, h.timeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return answer{result: ResultUnreachable, err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "node-healer")
	req.Header.Set("X-Node-Healer-Event", event)
	if h.TokenFile != "" {
		tok, err := readToken(h.TokenFile)
		if err != nil {
			return answer{result: ResultUnreachable, err: err}
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	c := h.Client
	if c == nil {
		c = noRedirects
	}
	resp, err := c.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return answer{result: ResultTimeout, err: err}
		}
		return answer{result: ResultUnreachable, err: stripURL(err)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, bodyShown))
	// Read a little more so that the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return answer{result: ResultOK, code: resp.StatusCode}
	}
	if err != nil && errors.Is(err, context.DeadlineExceeded) {
		return answer{result: ResultTimeout, err: err}
	}
	return answer{result: ResultHTTPError, code: resp.StatusCode,
		body: strings.TrimSpace(strings.ToValidUTF8(string(b), "?"))}
}

// readToken reads a bearer token file (at every request: rotation works).
// Errors name the file, never its content.
func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("bearer_token_file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("bearer_token_file %s is empty", path)
	}
	return tok, nil
}

// stripURL keeps a transport error's cause without repeating the URL
// (which may carry a query string the operator did not mean to show).
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}

// encode builds a request body.
func encode(event, hook, step string, run *runbooks.Run, now time.Time) ([]byte, error) {
	return json.Marshal(Payload{Event: event, Hook: hook, Step: step, SentAt: now.UTC(), Run: run})
}
