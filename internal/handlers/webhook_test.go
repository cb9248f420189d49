package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/node-healer/node-healer/internal/config"
	"github.com/node-healer/node-healer/internal/metrics"
	"github.com/node-healer/node-healer/internal/runbooks"
)

const testConfig = `
webhook:
  max_body_bytes: 4096
  auth:
    bearer_token_file: ../config/testdata/token
routes:
  - name: deadlock
    matchers: ['alertname="NodeKernelDeadlock"']
    runbook: cordon
`

// fakeIntake records what the webhook persists (unit tests only; the real
// queue is tested against redis-server in queue and the integration tests).
type fakeIntake struct {
	mu       sync.Mutex
	seen     map[string]bool
	reqs     []runbooks.Request
	resolved []string
	firing   map[string]string
	err      error
	batches  int // Record calls: one per payload
}

func (f *fakeIntake) Enqueue(_ context.Context, reqs []runbooks.Request) ([]bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return f.enqueue(reqs), nil
}

func (f *fakeIntake) enqueue(reqs []runbooks.Request) []bool {
	added := make([]bool, len(reqs))
	for i, r := range reqs {
		if !f.seen[r.RunID] {
			f.seen[r.RunID] = true
			f.reqs = append(f.reqs, r)
			added[i] = true
		}
	}
	return added
}

// Record is all or nothing, as the real one (one pipeline) is to the
// webhook: an error and the webhook trusts none of it.
func (f *fakeIntake) Record(_ context.Context, reqs []runbooks.Request, firing map[string]string, resolved map[string]time.Time) ([]bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batches++
	if f.err != nil {
		return nil, f.err
	}
	for fp := range resolved {
		f.resolved = append(f.resolved, fp)
	}
	if f.firing == nil {
		f.firing = map[string]string{}
	}
	maps.Copy(f.firing, firing)
	return f.enqueue(reqs), nil
}

type fakeNodes map[string]bool

func (f fakeNodes) NodeExists(_ context.Context, n string) (bool, error) { return f[n], nil }

func newTestServer(t *testing.T, in Intake) (http.Handler, *metrics.Metrics) {
	t.Helper()
	cfg, err := config.Parse([]byte(testConfig), ".", nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, nil)
	return New(Options{Router: cfg, Intake: in, Nodes: fakeNodes{"n1": true, "n2": true}, Auth: cfg.Webhook.Auth,
		MaxBody: cfg.Webhook.MaxBodyBytes, Metrics: m, Gatherer: reg, Log: slog.New(slog.DiscardHandler)}), m
}

func post(h http.Handler, body, token string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/webhook", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// payload builds an Alertmanager v4 webhook body.
func payload(alerts ...string) string {
	return `{"version":"4","groupKey":"{}:{}","status":"firing","receiver":"node-healer","alerts":[` + strings.Join(alerts, ",") + `]}`
}

func alert(status, fp string, labels string) string {
	return `{"status":"` + status + `","labels":{` + labels + `},"annotations":{},"startsAt":"2026-11-26T10:00:00Z","endsAt":"0001-01-01T00:00:00Z","fingerprint":"` + fp + `"}`
}

func TestWebhookRejections(t *testing.T) {
	good := payload(alert("firing", "f1", `"alertname":"NodeKernelDeadlock","node":"n1"`))
	cases := []struct {
		name, body, token string
		code              int
		want              string
	}{
		{"no auth", good, "", 401, `{"error":"unauthorized"}`},
		{"wrong token", good, "nope", 401, `{"error":"unauthorized"}`},
		{"malformed JSON", `{"version":"4","alerts":[`, "test-token", 400, `malformed JSON`},
		{"not JSON", `hello`, "test-token", 400, `malformed JSON`},
		{"wrong version", strings.Replace(good, `"version":"4"`, `"version":"3"`, 1), "test-token", 400, `unsupported payload version \"3\"`},
		{"no version", `{"alerts":[]}`, "test-token", 400, `unsupported payload version \"\"`},
		{"empty alert list", payload(), "test-token", 400, `payload has no alerts`},
		{"oversize body", payload(alert("firing", "f1", `"alertname":"NodeKernelDeadlock","node":"`+strings.Repeat("x", 5000)+`"`)), "test-token", 413, `payload larger than 4096 bytes`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := &fakeIntake{seen: map[string]bool{}}
			h, _ := newTestServer(t, in)
			rec := post(h, tc.body, tc.token)
			if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.want) {
				t.Fatalf("got %d %s; want %d containing %s", rec.Code, rec.Body, tc.code, tc.want)
			}
			if len(in.reqs) != 0 {
				t.Fatalf("a rejected request enqueued %d runs", len(in.reqs))
			}
		})
	}
}

func decodeReply(t *testing.T, rec *httptest.ResponseRecorder) Reply {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var r Reply
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestWebhookDecisions(t *testing.T) {
	in := &fakeIntake{seen: map[string]bool{}}
	h, m := newTestServer(t, in)
	rec := post(h, payload(
		alert("firing", "a", `"alertname":"NodeKernelDeadlock","node":"n1"`),
		alert("resolved", "b", `"alertname":"NodeKernelDeadlock","node":"n2"`),
		alert("firing", "c", `"alertname":"NodeKernelDeadlock"`),
		alert("firing", "d", `"alertname":"NodeKernelDeadlock","node":"ghost"`),
		alert("firing", "e", `"alertname":"Watchdog","node":"n1"`),
		alert("firing", "a", `"alertname":"NodeKernelDeadlock","node":"n1"`),
	), "test-token")
	r := decodeReply(t, rec)
	want := []struct{ outcome, reason string }{
		{"accepted", "accepted"}, {"ignored", "resolved"}, {"ignored", "no_node_label"},
		{"ignored", "unknown_node"}, {"ignored", "no_route"}, {"ignored", "duplicate"},
	}
	if len(r.Alerts) != len(want) {
		t.Fatalf("%d results: %s", len(r.Alerts), rec.Body)
	}
	for i, w := range want {
		if r.Alerts[i].Outcome != w.outcome || r.Alerts[i].Reason != w.reason {
			t.Errorf("alert %d: %s/%s, want %s/%s", i, r.Alerts[i].Outcome, r.Alerts[i].Reason, w.outcome, w.reason)
		}
	}
	if r.Accepted != 1 || r.Ignored != 5 {
		t.Errorf("accepted %d ignored %d", r.Accepted, r.Ignored)
	}
	if len(in.reqs) != 1 || in.reqs[0].Node != "n1" || in.reqs[0].Runbook != "cordon" || in.reqs[0].RunID != r.Alerts[0].RunID {
		t.Errorf("enqueued %+v", in.reqs)
	}
	if len(in.resolved) != 1 || in.resolved[0] != "b" {
		t.Errorf("resolved recorded: %v", in.resolved)
	}
	// Only alerts for nodes of this cluster count toward the breaker: the
	// alert for "ghost" (not a node) is not recorded as firing.
	if len(in.firing) != 1 || in.firing["a"] != "n1" {
		t.Errorf("firing recorded for the breaker: %v, want only a → n1", in.firing)
	}
	if v := testutil.ToFloat64(m.Alerts.WithLabelValues("unknown_node")); v != 1 {
		t.Errorf("alerts_total{outcome=unknown_node} = %v", v)
	}
	// Jobs, firing and resolved alerts go to the intake together: one
	// call, one Redis round trip, per payload.
	if in.batches != 1 {
		t.Errorf("%d intake calls for one payload, want 1", in.batches)
	}
}

func TestWebhookResolvedOnly(t *testing.T) {
	in := &fakeIntake{seen: map[string]bool{}}
	h, _ := newTestServer(t, in)
	r := decodeReply(t, post(h, payload(alert("resolved", "z", `"alertname":"NodeKernelDeadlock","node":"n1"`)), "test-token"))
	if r.Accepted != 0 || r.Alerts[0].Reason != "resolved" || len(in.reqs) != 0 || len(in.resolved) != 1 {
		t.Fatalf("resolved-only payload: %+v, enqueued %d", r, len(in.reqs))
	}
}

func TestWebhookCannotPersist(t *testing.T) {
	in := &fakeIntake{seen: map[string]bool{}, err: errors.New("dial tcp: connection refused")}
	h, m := newTestServer(t, in)
	for _, body := range []string{
		payload(alert("firing", "a", `"alertname":"NodeKernelDeadlock","node":"n1"`)),
		payload(alert("resolved", "a", `"alertname":"NodeKernelDeadlock","node":"n1"`)),
	} {
		rec := post(h, body, "test-token")
		if rec.Code != 503 || !strings.Contains(rec.Body.String(), "Alertmanager will retry") {
			t.Fatalf("got %d %s, want 503", rec.Code, rec.Body)
		}
		if strings.Contains(rec.Body.String(), "connection refused") {
			t.Errorf("503 body leaks internals: %s", rec.Body)
		}
	}
	if v := testutil.ToFloat64(m.WebhookRequests.WithLabelValues("503")); v != 2 {
		t.Errorf("webhook_requests_total{code=503} = %v", v)
	}
	if v := testutil.ToFloat64(m.RedisErrors.WithLabelValues("enqueue")); v != 2 {
		t.Errorf("redis_errors_total{op=enqueue} = %v", v)
	}
}
