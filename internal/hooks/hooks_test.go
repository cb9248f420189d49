package hooks

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// endpoint is a hook receiver whose answers the test sets.
type endpoint struct {
	*httptest.Server
	mu       sync.Mutex
	code     int
	body     string
	delay    time.Duration
	payloads []Payload
	auth     []string
}

func newEndpoint(t *testing.T, code int, body string) *endpoint {
	e := &endpoint{code: code, body: body}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var p Payload
		if err := json.Unmarshal(b, &p); err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("bad request %s %q: %v", r.Method, b, err)
		}
		e.mu.Lock()
		e.payloads = append(e.payloads, p)
		e.auth = append(e.auth, r.Header.Get("Authorization"))
		code, body, delay := e.code, e.body, e.delay
		e.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *endpoint) set(code int, body string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.code, e.body = code, body
}

func (e *endpoint) got() ([]Payload, []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Payload(nil), e.payloads...), append([]string(nil), e.auth...)
}

func testRun() *runbooks.Run {
	return &runbooks.Run{ID: "r1", Runbook: "drain", Route: "deadlock", Node: "n1", Status: runbooks.StatusRunning, Next: 1}
}

func count(m *Metrics, hook, result string) float64 {
	return testutil.ToFloat64(m.Requests.WithLabelValues(hook, result))
}

func TestBlockingHookHoldsThenAllows(t *testing.T) {
	ep := newEndpoint(t, 500, "  change freeze until Friday "+strings.Repeat("x", 300))
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("tok-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := &Hook{Name: "ticket", URL: ep.URL, On: []string{BeforeDestructive}, Blocking: true, Timeout: time.Second, TokenFile: tokenFile}
	m := NewMetrics(prometheus.NewRegistry(), []*Hook{h})
	c := &Check{Hook: h, Metrics: m}
	ctx := context.Background()
	run := testRun()

	d, err := c.Check(ctx, run, "drain", nil)
	if err != nil || d.Allow || d.Kind != KindHook {
		t.Fatalf("500: %+v %v, want a hook hold", d, err)
	}
	wantReason := "hook ticket answered 500: change freeze until Friday " + strings.Repeat("x", 200-len("  change freeze until Friday "))
	if d.Reason != wantReason {
		t.Fatalf("reason %q\nwant   %q", d.Reason, wantReason)
	}
	// Held: asked again at the next poll.
	if d, _ = c.Check(ctx, run, "drain", nil); d.Allow {
		t.Fatal("allowed while the hook still answers 500")
	}
	// The token is read at every request: a rotated one is used at once.
	if err := os.WriteFile(tokenFile, []byte("tok-2"), 0o600); err != nil {
		t.Fatal(err)
	}
	ep.set(200, "ok")
	if d, err = c.Check(ctx, run, "drain", nil); err != nil || !d.Allow {
		t.Fatalf("200: %+v %v, want allow", d, err)
	}
	// The yes is remembered for this (run, step): polling does not re-ask.
	ep.set(500, "no")
	for range 3 {
		if d, _ = c.Check(ctx, run, "drain", nil); !d.Allow {
			t.Fatalf("re-asked after a yes for the step: %+v", d)
		}
	}
	ps, auth := ep.got()
	if len(ps) != 3 {
		t.Fatalf("%d requests, want 3 (500, 500, 200)", len(ps))
	}
	if p := ps[0]; p.Event != BeforeDestructive || p.Step != "drain" || p.Hook != "ticket" || p.Run == nil || p.Run.ID != "r1" || p.Run.Node != "n1" {
		t.Fatalf("payload %+v", p)
	}
	if auth[0] != "Bearer tok-1" || auth[2] != "Bearer tok-2" {
		t.Fatalf("authorization headers %q", auth)
	}
	// Another step of the run is asked anew.
	run.Next = 3
	if d, _ = c.Check(ctx, run, "soft-reboot", nil); d.Allow {
		t.Fatal("a later step allowed without asking")
	}
	if ok, bad := count(m, "ticket", ResultOK), count(m, "ticket", ResultHTTPError); ok != 1 || bad != 3 {
		t.Fatalf("ok %v http_error %v, want 1 and 3", ok, bad)
	}
}

func TestBlockingHookTimeout(t *testing.T) {
	ep := newEndpoint(t, 200, "")
	ep.delay = 2 * time.Second
	h := &Hook{Name: "slow", URL: ep.URL, On: []string{BeforeDestructive}, Blocking: true, Timeout: 100 * time.Millisecond}
	m := NewMetrics(prometheus.NewRegistry(), []*Hook{h})
	c := &Check{Hook: h, Metrics: m}
	start := time.Now()
	d, err := c.Check(context.Background(), testRun(), "drain", nil)
	if err != nil || d.Allow || d.Kind != KindHook || d.Reason != "hook slow did not answer within 100ms" {
		t.Fatalf("%+v %v", d, err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("took %s: the timeout was not applied", took)
	}
	if n := count(m, "slow", ResultTimeout); n != 1 {
		t.Fatalf("timeouts counted %v", n)
	}
}

func TestBlockingHookUnreachableAndTokenMissing(t *testing.T) {
	h := &Hook{Name: "gone", URL: "http://127.0.0.1:1/", Blocking: true, Timeout: time.Second}
	c := &Check{Hook: h}
	d, err := c.Check(context.Background(), testRun(), "drain", nil)
	if err != nil || d.Allow || !strings.HasPrefix(d.Reason, "hook gone could not be asked: ") || strings.Contains(d.Reason, "127.0.0.1:1/") {
		t.Fatalf("%+v %v", d, err)
	}
	ep := newEndpoint(t, 200, "")
	h = &Hook{Name: "tok", URL: ep.URL, Blocking: true, TokenFile: filepath.Join(t.TempDir(), "missing")}
	c = &Check{Hook: h}
	if d, _ = c.Check(context.Background(), testRun(), "drain", nil); d.Allow || !strings.Contains(d.Reason, "bearer_token_file") {
		t.Fatalf("%+v", d)
	}
	if ps, _ := ep.got(); len(ps) != 0 {
		t.Fatal("sent without its token")
	}
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNotifierRetriesAndCounts(t *testing.T) {
	ep := newEndpoint(t, 500, "busy")
	h := &Hook{Name: "chat", URL: ep.URL, On: []string{RunFinished, Escalated}, Timeout: time.Second}
	blocking := &Hook{Name: "ticket", URL: ep.URL, On: []string{BeforeDestructive}, Blocking: true}
	m := NewMetrics(prometheus.NewRegistry(), []*Hook{h, blocking})
	n := &Notifier{Hooks: []*Hook{h, blocking}, Metrics: m, Backoff: 20 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.Run(ctx)

	run := testRun()
	run.Status = runbooks.StatusSucceeded
	n.OnFinish(ctx, run)
	waitFor(t, "two failed attempts", func() bool { return count(m, "chat", ResultHTTPError) == 2 })
	ep.set(200, "")
	waitFor(t, "the third attempt", func() bool { return count(m, "chat", ResultOK) == 1 })
	ps, _ := ep.got()
	if len(ps) != 3 || ps[2].Event != RunFinished || ps[2].Run.Status != runbooks.StatusSucceeded {
		t.Fatalf("payloads %+v", ps)
	}

	// Escalated: run-finished and escalated. A hook that fails every
	// attempt gives up after 3.
	ep.set(503, "")
	run.Status = runbooks.StatusEscalated
	n.OnFinish(ctx, run)
	waitFor(t, "both deliveries to give up", func() bool { return count(m, "chat", ResultHTTPError) == 2+6 })
	time.Sleep(200 * time.Millisecond)
	ps, _ = ep.got()
	events := map[string]int{}
	for _, p := range ps[3:] {
		events[p.Event]++
	}
	if len(ps) != 9 || events[RunFinished] != 3 || events[Escalated] != 3 {
		t.Fatalf("%d requests %v, want 3 attempts of run-finished and escalated", len(ps), events)
	}
	if got := count(m, "ticket", ResultOK) + count(m, "ticket", ResultHTTPError); got != 0 {
		t.Fatal("the blocking hook was notified")
	}
}

func TestNotifierQueueBoundedDropsAndCounts(t *testing.T) {
	ep := newEndpoint(t, 200, "")
	h := &Hook{Name: "chat", URL: ep.URL, On: []string{RunFinished}}
	m := NewMetrics(prometheus.NewRegistry(), []*Hook{h})
	n := &Notifier{Hooks: []*Hook{h}, Metrics: m, QueueSize: 2}
	start := time.Now()
	for range 5 {
		n.Notify(RunFinished, testRun(), "") // nothing sends yet
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Fatalf("Notify waited %s", took)
	}
	if d := count(m, "chat", ResultDropped); d != 3 {
		t.Fatalf("dropped %v, want 3", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.Run(ctx)
	waitFor(t, "the queued deliveries", func() bool { return count(m, "chat", ResultOK) == 2 })
}

func TestAnnounceOncePerStepNeverHolds(t *testing.T) {
	ep := newEndpoint(t, 500, "")
	h := &Hook{Name: "log", URL: ep.URL, On: []string{BeforeDestructive}}
	m := NewMetrics(prometheus.NewRegistry(), []*Hook{h})
	n := &Notifier{Hooks: []*Hook{h}, Metrics: m, Attempts: 1}
	c := n.Announce()
	run := testRun()
	for range 3 {
		if d, err := c.Check(context.Background(), run, "drain", nil); err != nil || !d.Allow {
			t.Fatalf("%+v %v", d, err)
		}
	}
	if len(n.queue) != 1 {
		t.Fatalf("%d deliveries queued, want 1 per (run, step)", len(n.queue))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.Run(ctx)
	waitFor(t, "the announcement", func() bool { return count(m, "log", ResultHTTPError) == 1 })
	if ps, _ := ep.got(); ps[0].Event != BeforeDestructive || ps[0].Step != "drain" {
		t.Fatalf("%+v", ps[0])
	}
}
