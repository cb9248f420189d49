package handlers

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/node-healer/node-healer/internal/config"
	"github.com/node-healer/node-healer/internal/metrics"
)

func authConfig(t *testing.T, auth string) config.Auth {
	t.Helper()
	cfg, err := config.Parse([]byte("webhook: {auth: "+auth+"}\nroutes: [{name: r, matchers: ['alertname=\"X\"'], runbook: cordon}]"), ".", nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Webhook.Auth
}

// TestBearerToken: only "Bearer <token>" passes, read per request from
// CurrentAuth, so a reloaded token applies to the next request.
func TestBearerToken(t *testing.T) {
	var cur atomic.Pointer[config.Auth]
	a := authConfig(t, "{bearer_token_file: ../config/testdata/token}")
	cur.Store(&a)
	reg := prometheus.NewRegistry()
	h := New(Options{Router: routerFunc(nil), Intake: &fakeIntake{seen: map[string]bool{}},
		CurrentAuth: func() config.Auth { return *cur.Load() },
		Metrics:     metrics.New(reg, nil), Gatherer: reg, Log: slog.New(slog.DiscardHandler)})
	body := payload(alert("firing", "a", `"alertname":"X","node":"n1"`))
	send := func(authz string) int {
		req := httptest.NewRequest(http.MethodPost, "/webhook", strings.NewReader(body))
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	for _, tc := range []struct {
		authz string
		code  int
	}{
		{"Bearer test-token", 200}, {"bearer test-token", 200}, {"Bearer wrong", 401}, {"", 401},
		{"Basic dGVzdC10b2tlbjo=", 401}, {"Bearer test-token2", 401},
	} {
		if got := send(tc.authz); got != tc.code {
			t.Errorf("%q: %d, want %d", tc.authz, got, tc.code)
		}
	}
	b := authConfig(t, "{bearer_token_file: ../config/testdata/password}")
	cur.Store(&b)
	if got := send("Bearer test-token"); got != 401 {
		t.Errorf("old token after the swap: %d, want 401", got)
	}
	if got := send("Bearer pw"); got != 200 {
		t.Errorf("new token after the swap: %d, want 200", got)
	}
	open := authConfig(t, "{allow_unauthenticated: true}")
	cur.Store(&open)
	if got := send(""); got != 200 {
		t.Errorf("allow_unauthenticated, no header: %d, want 200", got)
	}
}

// routerFunc routes every alert to route r (nil: no route).
type routerFunc func(map[string]string) *config.Route

func (f routerFunc) Match(l map[string]string) *config.Route {
	if f == nil {
		return &config.Route{Name: "r", Runbook: "cordon", NodeLabel: "node"}
	}
	return f(l)
}

// TestReloadEndpoint: 403 without the lifecycle API, else the reload's
// outcome (500 with the reason).
func TestReloadEndpoint(t *testing.T) {
	reg := prometheus.NewRegistry()
	var calls int
	var fail error
	opts := Options{Router: routerFunc(nil), Intake: &fakeIntake{seen: map[string]bool{}}, Gatherer: reg,
		Log: slog.New(slog.DiscardHandler), Reload: func(context.Context) error { calls++; return fail }}
	do := func(h http.Handler, method string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, "/-/reload", nil))
		return rec
	}
	if rec := do(New(opts), http.MethodPost); rec.Code != 403 || !strings.Contains(rec.Body.String(), "--web.enable-lifecycle") {
		t.Errorf("lifecycle off: %d %s, want 403", rec.Code, rec.Body)
	}
	if calls != 0 {
		t.Fatalf("reload ran with the lifecycle API off")
	}
	opts.EnableLifecycle = true
	h := New(opts)
	if rec := do(h, http.MethodPost); rec.Code != 200 || calls != 1 {
		t.Errorf("good reload: %d %s (calls %d)", rec.Code, rec.Body, calls)
	}
	if rec := do(h, http.MethodGet); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET /-/reload: %d, want 405", rec.Code)
	}
	fail = errors.New("routes[0]: runbook: required")
	if rec := do(h, http.MethodPost); rec.Code != 500 || !strings.Contains(rec.Body.String(), "routes[0]: runbook: required") {
		t.Errorf("bad reload: %d %s, want 500 with the reason", rec.Code, rec.Body)
	}
}
