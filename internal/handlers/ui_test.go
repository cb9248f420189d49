package handlers

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/node-healer/node-healer/internal/config"
	"github.com/node-healer/node-healer/internal/metrics"
	"github.com/node-healer/node-healer/internal/safety"
	"github.com/node-healer/node-healer/internal/ui"
)

// TestUIHealTakesTheManualPath: the operator page is mounted when
// Options.UI is set, and its heal form queues the same request as POST
// /api/v1/runs (validation, node check, route "manual", who asked),
// counted in node_healer_manual_requests_total.
func TestUIHealTakesTheManualPath(t *testing.T) {
	cfg, err := config.Parse([]byte(testConfig), ".", nil)
	if err != nil {
		t.Fatal(err)
	}
	in := &fakeIntake{seen: map[string]bool{}}
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, nil)
	h := New(Options{Router: cfg, Intake: in, Nodes: fakeNodes{"n1": true}, Runs: fakeRuns{}, Auth: cfg.Webhook.Auth, Metrics: m,
		Gatherer: reg, Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC) },
		UI: &ui.Options{
			Status: func(context.Context, safety.RunLister) (*safety.Status, error) { return &safety.Status{}, nil },
			Runs:   fakeRuns{}, Runbooks: []string{"cordon"},
			Identity: func(*http.Request) (string, error) { return "alice", nil },
		}})
	get := httptest.NewRecorder()
	h.ServeHTTP(get, httptest.NewRequest(http.MethodGet, "/nodes/n1", nil))
	if get.Code != http.StatusOK || !strings.Contains(get.Body.String(), `id="heal-button"`) {
		t.Fatalf("node page: %d\n%s", get.Code, get.Body)
	}
	tok := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(get.Body.String())
	cookie := get.Result().Cookies()
	if tok == nil || len(cookie) != 1 {
		t.Fatalf("no CSRF token or cookie: %v", cookie)
	}
	post := func(f url.Values) *httptest.ResponseRecorder {
		f.Set("csrf", tok[1])
		req := httptest.NewRequest(http.MethodPost, "/actions/heal", strings.NewReader(f.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(cookie[0])
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	if rec := post(url.Values{"node": {"n9"}, "runbook": {"cordon"}, "reason": {"x"}}); rec.Code != http.StatusUnprocessableEntity ||
		!strings.Contains(rec.Body.String(), "node &#34;n9&#34; is not in the cluster") {
		t.Errorf("unknown node: %d %s", rec.Code, rec.Body)
	}
	if rec := post(url.Values{"node": {"n1"}, "runbook": {"nope"}, "reason": {"x"}}); rec.Code != http.StatusUnprocessableEntity ||
		!strings.Contains(rec.Body.String(), "unknown runbook") {
		t.Errorf("unknown runbook: %d %s", rec.Code, rec.Body)
	}
	rec := post(url.Values{"node": {"n1"}, "runbook": {"cordon"}, "reason": {"ECC errors"}})
	if rec.Code != http.StatusSeeOther || len(in.reqs) != 1 {
		t.Fatalf("heal: %d %v, %d queued", rec.Code, rec.Header(), len(in.reqs))
	}
	q := in.reqs[0]
	if q.Route != ManualRoute || q.Node != "n1" || q.Runbook != "cordon" || q.RequestedBy != "alice" || q.Reason != "ECC errors" || q.DryRun {
		t.Errorf("queued %+v", q)
	}
	if loc := rec.Header().Get("Location"); loc != "/runs/"+q.RunID+"?done=started" {
		t.Errorf("Location %q", loc)
	}
	if n := testutil.ToFloat64(m.ManualRequests.WithLabelValues("422")); n != 2 {
		t.Errorf("manual requests 422: %v", n)
	}
	if n := testutil.ToFloat64(m.ManualRequests.WithLabelValues("202")); n != 1 {
		t.Errorf("manual requests 202: %v", n)
	}
}
