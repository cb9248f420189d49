package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/hooks"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/testenv"
)

// hookSink answers hook requests (per path: the code the test sets) and
// keeps what it was sent.
type hookSink struct {
	*httptest.Server
	mu   sync.Mutex
	code map[string]int
	got  map[string][]hooks.Payload
	auth map[string][]string
}

func newHookSink(t *testing.T) *hookSink {
	s := &hookSink{code: map[string]int{}, got: map[string][]hooks.Payload{}, auth: map[string][]string{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var p hooks.Payload
		if err := json.Unmarshal(b, &p); err != nil {
			t.Errorf("hook body %q: %v", b, err)
		}
		s.mu.Lock()
		s.got[r.URL.Path] = append(s.got[r.URL.Path], p)
		s.auth[r.URL.Path] = append(s.auth[r.URL.Path], r.Header.Get("Authorization"))
		code := s.code[r.URL.Path]
		s.mu.Unlock()
		if code == 0 {
			code = 200
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, "change freeze: ticket CHG-42 not approved\n")
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *hookSink) set(path string, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.code[path] = code
}

func (s *hookSink) payloads(path string) ([]hooks.Payload, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]hooks.Payload(nil), s.got[path]...), append([]string(nil), s.auth[path]...)
}

// TestBlockingHookHoldsDrain: a blocking before-destructive hook that
// answers 500 holds a drain run after its cordon (hold kind hook, the
// answer in the reason); once it answers 200 the run finishes and the
// run-finished hook gets the final run.
func TestBlockingHookHoldsDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server, kube-apiserver and kwok (integration)")
	}
	sink := newHookSink(t)
	sink.set("/approve", 500)
	tokenFile := filepath.Join(t.TempDir(), "hook-token")
	if err := os.WriteFile(tokenFile, []byte("hook-s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	extra := fmt.Sprintf(`
hooks:
  - name: ticket
    url: %[1]s/approve
    on: [before-destructive]
    blocking: true
    timeout: 2s
    bearer_token_file: %[2]s
  - name: chat
    url: %[1]s/chat
    on: [before-destructive, run-finished, escalated]
`, sink.URL, tokenFile)
	routes := `
routes:
  - name: drain
    matchers: ['alertname="NodeDrainMe"']
    runbook: drain
`
	rec, _ := startReceiverWith(t, testenv.NewRedis(t), extra, routes, "hooks")
	createNodes(t, "hook-n1")
	_, reply := rec.post(t, amPayload("NodeDrainMe", "hook-n1", "fp-hook-1"))
	id := reply.Alerts[0].RunID

	var run *runbooks.Run
	waitFor(t, "the run to be held by the hook", 30*time.Second, func() bool {
		run = rec.run(t, id)
		return run != nil && run.Hold != nil && run.Hold.Kind == hooks.KindHook
	})
	if run.Status != runbooks.StatusHeld || run.Hold.Step != "drain" ||
		run.Hold.Reason != "hook ticket answered 500: change freeze: ticket CHG-42 not approved" {
		t.Fatalf("run %s hold %+v", run.Status, run.Hold)
	}
	if n := node(t, "hook-n1"); !n.Spec.Unschedulable {
		t.Fatal("the cordon before the held drain did not happen")
	}
	// Held: asked again at every poll of the gate.
	waitFor(t, "the hook to be asked again", 10*time.Second, func() bool {
		ps, _ := sink.payloads("/approve")
		return len(ps) >= 2
	})
	if chat, _ := sink.payloads("/chat"); len(chat) != 0 {
		t.Fatalf("non-blocking before-destructive sent while the blocking hook holds: %+v", chat)
	}
	if !rec.metric(t, `node_healer_holds_total{reason="hook"} 1`) {
		t.Error("hold not counted with reason hook")
	}

	sink.set("/approve", 200)
	run = rec.waitRun(t, id)
	if run.Status != runbooks.StatusSucceeded || run.Hold != nil {
		t.Fatalf("run %s %q hold %+v", run.Status, run.Error, run.Hold)
	}
	approve, auth := sink.payloads("/approve")
	last := approve[len(approve)-1]
	if last.Event != hooks.BeforeDestructive || last.Step != "drain" || last.Hook != "ticket" || last.Run.ID != id || last.Run.Node != "hook-n1" {
		t.Fatalf("before-destructive payload %+v", last)
	}
	for _, a := range auth {
		if a != "Bearer hook-s3cret" {
			t.Fatalf("authorization %q", a)
		}
	}
	if strings.Contains(rec.Log.String(), "hook-s3cret") {
		t.Error("the hook's token is in the log")
	}

	var finished *hooks.Payload
	waitFor(t, "run-finished to reach the chat hook", 10*time.Second, func() bool {
		chat, _ := sink.payloads("/chat")
		for i := range chat {
			if chat[i].Event == hooks.RunFinished {
				finished = &chat[i]
			}
		}
		return finished != nil
	})
	if finished.Run == nil || finished.Run.ID != id || finished.Run.Status != runbooks.StatusSucceeded || len(finished.Run.Timeline) != 2 {
		t.Fatalf("run-finished payload %+v", finished.Run)
	}
	chat, _ := sink.payloads("/chat")
	events := map[string]int{}
	for _, p := range chat {
		events[p.Event]++
	}
	if events[hooks.BeforeDestructive] != 1 || events[hooks.RunFinished] != 1 || events[hooks.Escalated] != 0 {
		t.Fatalf("chat hook events %v, want one before-destructive and one run-finished", events)
	}
	if !rec.metric(t, `node_healer_hook_requests_total{hook="ticket",result="ok"} 1`) ||
		!rec.metric(t, `node_healer_hook_requests_total{hook="chat",result="ok"} 2`) ||
		rec.metric(t, `node_healer_hook_requests_total{hook="ticket",result="http_error"} 0`) {
		t.Errorf("hook requests not counted:\n%s", grepLines(rec.metricsText(t), "node_healer_hook_requests_total"))
	}
}

// TestBlockingHookTimeoutHolds: a hook that does not answer in time
// holds the run with a reason that says so.
func TestBlockingHookTimeoutHolds(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server, kube-apiserver and kwok (integration)")
	}
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	extra := fmt.Sprintf("hooks: [{name: slow, url: %q, on: [before-destructive], blocking: true, timeout: 300ms}]", slow.URL)
	routes := "routes: [{name: drain, matchers: ['alertname=\"NodeDrainMe\"'], runbook: drain}]"
	rec, _ := startReceiverWith(t, testenv.NewRedis(t), extra, routes, "hooks-slow")
	createNodes(t, "hook-n2")
	_, reply := rec.post(t, amPayload("NodeDrainMe", "hook-n2", "fp-hook-2"))
	var run *runbooks.Run
	// The run is first deferred for settle (a hold of its own, 10 ms here):
	// wait past it for the hook's.
	waitFor(t, "the run to be held by the slow hook", 30*time.Second, func() bool {
		run = rec.run(t, reply.Alerts[0].RunID)
		return run != nil && run.Hold != nil && run.Hold.Kind != "settle"
	})
	if run.Hold.Kind != hooks.KindHook || run.Hold.Reason != "hook slow did not answer within 300ms" {
		t.Fatalf("hold %+v", run.Hold)
	}
}

func grepLines(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
