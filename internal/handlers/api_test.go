package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/node-healer/node-healer/internal/config"
	"github.com/node-healer/node-healer/internal/metrics"
	"github.com/node-healer/node-healer/internal/runbooks"
)

type fakeRuns map[string]*runbooks.Run

func (f fakeRuns) Load(_ context.Context, id string) (*runbooks.Run, error) {
	if r, ok := f[id]; ok {
		return r, nil
	}
	if id == "broken" {
		return nil, errors.New("redis: connection refused")
	}
	return nil, runbooks.ErrRunNotFound
}

func (f fakeRuns) List(_ context.Context, limit int) ([]*runbooks.Run, error) {
	var out []*runbooks.Run
	for _, r := range f {
		out = append(out, r)
	}
	return out, nil
}

func (f fakeRuns) ListJSON(ctx context.Context, limit int) ([]json.RawMessage, error) {
	runs, _ := f.List(ctx, limit)
	var out []json.RawMessage
	for _, r := range runs {
		b, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

func get(h http.Handler, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

func TestAPIAndHealth(t *testing.T) {
	reg := prometheus.NewRegistry()
	var redisDown error
	h := New(Options{Router: &config.Config{}, Intake: &fakeIntake{}, Runs: fakeRuns{"r1": {ID: "r1", Node: "n1", Status: runbooks.StatusSucceeded}},
		Auth: config.Auth{AllowUnauthenticated: true}, Metrics: metrics.New(reg, map[string][]string{"cordon": {"cordon"}}), Gatherer: reg,
		Log:   slog.New(slog.DiscardHandler),
		Ready: []Check{{Name: "redis", Func: func(context.Context) error { return redisDown }}}})
	cases := []struct {
		path string
		code int
		want string
	}{
		{"/-/healthy", 200, "OK"},
		{"/-/ready", 200, "OK"},
		{"/api/v1/runs/r1", 200, `"node":"n1"`},
		{"/api/v1/runs/nope", 404, `{"error":"no run with ID nope"}`},
		{"/api/v1/runs/broken", 503, `cannot read run`},
		{"/api/v1/runs", 200, `"runs":[{"id":"r1"`},
		{"/api/v1/runs?limit=0", 400, `limit must be a number from 1 to 1000`},
		{"/metrics", 200, `node_healer_steps_total{outcome="done",runbook="cordon",step="cordon"} 0`},
	}
	for _, tc := range cases {
		rec := get(h, tc.path)
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("GET %s: %d %.200s; want %d with %s", tc.path, rec.Code, rec.Body, tc.code, tc.want)
		}
	}
	// The list is the stored objects inside {"runs":[…]}, byte for byte
	// what encoding the runs used to give (echo's c.JSON, newline included).
	r1, _ := json.Marshal(fakeRuns{"r1": {ID: "r1", Node: "n1", Status: runbooks.StatusSucceeded}}["r1"])
	rec := get(h, "/api/v1/runs")
	if want := `{"runs":[` + string(r1) + `]}` + "\n"; rec.Body.String() != want || rec.Header().Get("Content-Type") != "application/json" ||
		rec.Header().Get("Content-Length") != fmt.Sprint(len(want)) {
		t.Errorf("GET /api/v1/runs: %q (%s, length %s); want %q", rec.Body, rec.Header().Get("Content-Type"), rec.Header().Get("Content-Length"), want)
	}
	empty := New(Options{Router: &config.Config{}, Intake: &fakeIntake{}, Runs: fakeRuns{}, Auth: config.Auth{AllowUnauthenticated: true}, Log: slog.New(slog.DiscardHandler)})
	if rec := get(empty, "/api/v1/runs"); rec.Body.String() != `{"runs":[]}`+"\n" {
		t.Errorf("GET /api/v1/runs with none: %q", rec.Body)
	}
	redisDown = errors.New("connection refused")
	if rec := get(h, "/-/ready"); rec.Code != 503 || !strings.Contains(rec.Body.String(), "redis: connection refused") {
		t.Errorf("ready with redis down: %d %s", rec.Code, rec.Body)
	}
}
