package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
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

// lockedBuffer is a log sink the handler may write from any goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type manualServer struct {
	h    http.Handler
	in   *fakeIntake
	runs fakeRuns
	m    *metrics.Metrics
	log  *lockedBuffer
	now  time.Time
}

func newManualServer(t *testing.T) *manualServer {
	t.Helper()
	cfg, err := config.Parse([]byte(testConfig), ".", nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &manualServer{in: &fakeIntake{seen: map[string]bool{}}, runs: fakeRuns{}, log: &lockedBuffer{},
		now: time.Date(2026, 11, 26, 10, 0, 5, 0, time.UTC)}
	reg := prometheus.NewRegistry()
	s.m = metrics.New(reg, nil)
	s.h = New(Options{Router: cfg, Intake: s.in, Nodes: fakeNodes{"n1": true, "n2": true}, Runs: s.runs, Auth: cfg.Webhook.Auth,
		MaxBody: cfg.Webhook.MaxBodyBytes, Metrics: s.m, Gatherer: reg, Log: slog.New(slog.NewTextHandler(s.log, nil)),
		Now: func() time.Time { return s.now }})
	return s
}

func (s *manualServer) post(body, token string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/api/v1/runs", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	s.h.ServeHTTP(rec, req)
	return rec
}

func manualReply(t *testing.T, rec *httptest.ResponseRecorder) ManualReply {
	t.Helper()
	var r ManualReply
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatalf("reply %s: %v", rec.Body, err)
	}
	if r.Run == "" {
		t.Fatalf("reply without a run ID: %s", rec.Body)
	}
	return r
}

func TestManualRunQueued(t *testing.T) {
	s := newManualServer(t)
	rec := s.post(`{"node":"n1","runbook":"reboot","reason":"ECC errors, ticket OPS-1","params":{"drain_timeout":"2m"},"requested_by":"alice"}`, "test-token")
	if rec.Code != http.StatusAccepted {
		t.Fatalf("got %d %s, want 202", rec.Code, rec.Body)
	}
	r := manualReply(t, rec)
	if loc := rec.Header().Get("Location"); loc != "/api/v1/runs/"+r.Run {
		t.Errorf("Location %q", loc)
	}
	if len(s.in.reqs) != 1 {
		t.Fatalf("queued %d requests", len(s.in.reqs))
	}
	q := s.in.reqs[0]
	if q.RunID != r.Run || q.Node != "n1" || q.Runbook != "reboot" || q.Route != ManualRoute || q.DryRun ||
		q.Reason != "ECC errors, ticket OPS-1" || q.RequestedBy != "alice" || q.Params["drain_timeout"] != "2m" ||
		q.Labels["alertname"] != ManualRoute || q.Labels["node"] != "n1" || q.Labels["reason"] != "ECC errors, ticket OPS-1 (requested by alice)" || q.Fingerprint != "" || !q.Enqueued.Equal(s.now) {
		t.Fatalf("queued %+v", q)
	}
	if len(s.in.firing) != 0 {
		t.Errorf("a manual run counted as a firing alert: %v", s.in.firing)
	}
	if !strings.Contains(s.log.String(), "ECC errors, ticket OPS-1") || !strings.Contains(s.log.String(), "run="+r.Run) {
		t.Errorf("log does not name the run and its reason:\n%s", s.log)
	}
	if strings.Contains(s.log.String(), "test-token") {
		t.Errorf("the token is in the log:\n%s", s.log)
	}
}

func TestManualDedupe(t *testing.T) {
	s := newManualServer(t)
	body := `{"node":"n1","runbook":"cordon","reason":"first"}`
	first := manualReply(t, s.post(body, "test-token"))

	// The same action again (another reason, same minute): the same run.
	s.now = s.now.Add(30 * time.Second)
	rec := s.post(`{"node":"n1","runbook":"cordon","reason":"double click"}`, "test-token")
	if r := manualReply(t, rec); rec.Code != http.StatusOK || !r.Duplicate || r.Run != first.Run {
		t.Fatalf("repeat: %d %s, want 200 duplicate of %s", rec.Code, rec.Body, first.Run)
	}
	// Anything that changes what the run does is another run.
	for _, other := range []string{
		`{"node":"n2","runbook":"cordon","reason":"r"}`,
		`{"node":"n1","runbook":"drain","reason":"r"}`,
		`{"node":"n1","runbook":"cordon","reason":"r","dry_run":true}`,
		`{"node":"n1","runbook":"cordon","reason":"r","params":{"hold_timeout":"5m"}}`,
	} {
		rec := s.post(other, "test-token")
		if r := manualReply(t, rec); rec.Code != http.StatusAccepted || r.Run == first.Run {
			t.Errorf("%s: %d %s, want a new run", other, rec.Code, rec.Body)
		}
	}
	if !s.in.reqs[3].DryRun {
		t.Errorf("dry_run not carried: %+v", s.in.reqs[3])
	}

	// A minute later: the identical run is still unfinished, so it is the
	// answer; once final, a new request starts a new run.
	s.runs[first.Run] = &runbooks.Run{ID: first.Run, Route: ManualRoute, Node: "n1", Runbook: "cordon", Status: runbooks.StatusDeferred}
	s.now = s.now.Add(2 * ManualDedupe)
	rec = s.post(body, "test-token")
	if r := manualReply(t, rec); rec.Code != http.StatusOK || r.Run != first.Run || r.Status != "deferred" {
		t.Fatalf("while unfinished: %d %s", rec.Code, rec.Body)
	}
	s.runs[first.Run].Status = runbooks.StatusSucceeded
	rec = s.post(body, "test-token")
	if r := manualReply(t, rec); rec.Code != http.StatusAccepted || r.Run == first.Run {
		t.Fatalf("after the first finished: %d %s, want a new run", rec.Code, rec.Body)
	}
}

func TestManualRejections(t *testing.T) {
	s := newManualServer(t)
	for _, c := range []struct {
		name, body, token string
		code              int
		want              []string
	}{
		{"no token", `{"node":"n1","runbook":"cordon","reason":"r"}`, "", 401, []string{"unauthorized"}},
		{"wrong token", `{"node":"n1","runbook":"cordon","reason":"r"}`, "nope", 401, []string{"unauthorized"}},
		{"unknown node", `{"node":"ghost","runbook":"cordon","reason":"r"}`, "test-token", 422, []string{`node \"ghost\" is not in the cluster`}},
		{"unknown runbook", `{"node":"n1","runbook":"rebot","reason":"r"}`, "test-token", 422, []string{`unknown runbook \"rebot\"`, "reboot", "power-cycle"}},
		{"no runbook", `{"node":"n1","reason":"r"}`, "test-token", 422, []string{"runbook: required", "cordon"}},
		{"bad param", `{"node":"n1","runbook":"reboot","reason":"r","params":{"drain_timeout":"soon"}}`, "test-token", 422, []string{"params: drain_timeout", "soon"}},
		{"unknown param", `{"node":"n1","runbook":"reboot","reason":"r","params":{"force":"true"}}`, "test-token", 422, []string{`unknown parameter \"force\"`}},
		{"no reason", `{"node":"n1","runbook":"reboot"}`, "test-token", 422, []string{"reason: required"}},
		{"no node", `{"runbook":"reboot","reason":"r"}`, "test-token", 422, []string{"node: required"}},
		{"unknown field", `{"node":"n1","runbook":"reboot","reason":"r","dryrun":true}`, "test-token", 400, []string{"dryrun"}},
		{"not JSON", `node=n1`, "test-token", 400, []string{"malformed JSON"}},
	} {
		rec := s.post(c.body, c.token)
		if rec.Code != c.code {
			t.Errorf("%s: got %d %s, want %d", c.name, rec.Code, rec.Body, c.code)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(rec.Body.String(), w) {
				t.Errorf("%s: body %s does not say %q", c.name, rec.Body, w)
			}
		}
	}
	if len(s.in.reqs) != 0 {
		t.Fatalf("refused requests were queued: %+v", s.in.reqs)
	}
	for code, want := range map[string]float64{"401": 2, "422": 7, "400": 2, "202": 0} {
		if v := testutil.ToFloat64(s.m.ManualRequests.WithLabelValues(code)); v != want {
			t.Errorf("node_healer_manual_requests_total{code=%q} = %v, want %v", code, v, want)
		}
	}
	if strings.Contains(s.log.String(), "test-token") {
		t.Errorf("the token is in the log:\n%s", s.log)
	}
}

func TestManualRedisDown(t *testing.T) {
	s := newManualServer(t)
	s.in.err = errors.New("dial tcp: connection refused")
	rec := s.post(`{"node":"n1","runbook":"cordon","reason":"r"}`, "test-token")
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "nothing was started") {
		t.Fatalf("got %d %s, want 503", rec.Code, rec.Body)
	}
	if v := testutil.ToFloat64(s.m.RedisErrors.WithLabelValues("enqueue")); v != 1 {
		t.Errorf("redis_errors_total{op=enqueue} = %v", v)
	}
}

func TestManualBasicAuthUserIsRequester(t *testing.T) {
	s := newManualServer(t)
	req := httptest.NewRequest(http.MethodPost, "/api/v1/runs", strings.NewReader(`{"node":"n1","runbook":"cordon","reason":"r","requested_by":"mallory"}`))
	// The web configuration admitted bob; the bearer token cannot ride
	// along in the same header, so the token is not configured here.
	req.SetBasicAuth("bob", "pw")
	rec := httptest.NewRecorder()
	cfg, _ := config.Parse([]byte("routes: [{name: x, matchers: ['a=\"b\"'], runbook: cordon}]\nwebhook: {auth: {allow_unauthenticated: true}}"), ".", nil)
	reg := prometheus.NewRegistry()
	New(Options{Router: cfg, Intake: s.in, Auth: cfg.Webhook.Auth, Metrics: metrics.New(reg, nil), Gatherer: reg,
		Log: slog.New(slog.DiscardHandler)}).ServeHTTP(rec, req)
	if rec.Code != http.StatusAccepted || len(s.in.reqs) != 1 || s.in.reqs[0].RequestedBy != "bob" {
		t.Fatalf("got %d %s, queued %+v", rec.Code, rec.Body, s.in.reqs)
	}
}
