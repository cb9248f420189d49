package safety

import (
	"context"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	commoncfg "github.com/prometheus/common/config"

	"github.com/node-healer/node-healer/internal/config"
	"github.com/node-healer/node-healer/internal/testenv"
)

const oneSilence = `[
 {"id":"s1","status":{"state":"active"},"updatedAt":"2030-01-01T00:00:00Z","comment":"swap","createdBy":"alice",
  "startsAt":"2030-01-01T00:00:00Z","endsAt":"2030-01-01T01:00:00Z",
  "matchers":[{"name":"node","value":"n1","isRegex":false,"isEqual":true}]},
 {"id":"s2","status":{"state":"expired"},"updatedAt":"2030-01-01T00:00:00Z","comment":"old","createdBy":"bob",
  "startsAt":"2030-01-01T00:00:00Z","endsAt":"2030-01-01T00:10:00Z",
  "matchers":[{"name":"node","value":"n2","isRegex":false,"isEqual":true}]},
 {"id":"s3","status":{"state":"pending"},"updatedAt":"2030-01-01T00:00:00Z","comment":"later","createdBy":"bob",
  "startsAt":"2030-01-01T05:00:00Z","endsAt":"2030-01-01T06:00:00Z",
  "matchers":[{"name":"node","value":"n3","isRegex":false,"isEqual":true}]}
]`

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSilencesHTTP(t *testing.T) {
	var gotAuth atomic.Value
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/prefix/api/v2/silences" {
			http.NotFound(w, r)
			return
		}
		gotAuth.Store(r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(oneSilence))
	}))
	defer srv.Close()
	ca := writeFile(t, "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))

	tlsCA := commoncfg.TLSConfig{CAFile: ca}
	t.Run("bearer token and CA", func(t *testing.T) {
		tok := writeFile(t, "token", "secret-1\n")
		hc := commoncfg.HTTPClientConfig{TLSConfig: tlsCA, Authorization: &commoncfg.Authorization{CredentialsFile: tok}}
		s, err := NewSilences(SilencesConfig{Alertmanagers: []AlertmanagerSet{{URLs: []string{srv.URL + "/prefix/"}, HTTPConfig: hc}}, CacheTTL: -1})
		if err != nil {
			t.Fatal(err)
		}
		h, err := s.Check(context.Background(), nil, "n1")
		if err != nil || !h.Held {
			t.Fatalf("n1: %+v, %v", h, err)
		}
		if got := gotAuth.Load(); got != "Bearer secret-1" {
			t.Fatalf("Authorization = %q", got)
		}
		// Rotated token: read again at the next request.
		if err := os.WriteFile(tok, []byte("secret-2"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, node := range []string{"n2", "n3"} { // expired, pending: not held
			if h, err := s.Check(context.Background(), nil, node); err != nil || h.Held {
				t.Fatalf("%s: %+v, %v", node, h, err)
			}
		}
		if got := gotAuth.Load(); got != "Bearer secret-2" {
			t.Fatalf("Authorization after rotation = %q", got)
		}
	})

	t.Run("basic auth", func(t *testing.T) {
		pw := writeFile(t, "pw", "hunter2")
		hc := commoncfg.HTTPClientConfig{TLSConfig: tlsCA, BasicAuth: &commoncfg.BasicAuth{Username: "nh", PasswordFile: pw}}
		s, err := NewSilences(SilencesConfig{Alertmanagers: []AlertmanagerSet{{URLs: []string{srv.URL + "/prefix"}, HTTPConfig: hc}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Check(context.Background(), nil, "n1"); err != nil {
			t.Fatal(err)
		}
		if got := gotAuth.Load(); got != "Basic bmg6aHVudGVyMg==" {
			t.Fatalf("Authorization = %q", got)
		}
	})

	t.Run("unknown CA fails closed", func(t *testing.T) {
		s, err := NewSilences(SilencesConfig{URLs: []string{srv.URL + "/prefix"}})
		if err != nil {
			t.Fatal(err)
		}
		if h, err := s.Check(context.Background(), nil, "n9"); !errors.Is(err, ErrSilencesUnavailable) || !h.Held {
			t.Fatalf("untrusted certificate: %+v, %v", h, err)
		}
	})
}

func TestSilencesBadAnswers(t *testing.T) {
	for _, c := range []struct {
		name string
		h    http.HandlerFunc
	}{
		{"500", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", 500) }},
		{"401", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no", 401) }},
		{"not json", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("<html>")) }},
		{"slow", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(c.h)
			defer srv.Close()
			s, err := NewSilences(SilencesConfig{URLs: []string{srv.URL}, Timeout: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			h, err := s.Check(context.Background(), nil, "n1")
			if !errors.Is(err, ErrSilencesUnavailable) || !h.Held {
				t.Fatalf("Check = %+v, %v; want held and ErrSilencesUnavailable", h, err)
			}
			if n := testutil.ToFloat64(s.client.failed); n != 1 {
				t.Fatalf("requests_total{result=error} = %v, want 1", n)
			}
		})
	}
}

func TestSilencesCancelledNotCached(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		_, _ = w.Write([]byte(oneSilence))
	}))
	defer srv.Close()
	s, err := NewSilences(SilencesConfig{URLs: []string{srv.URL}, CacheTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Check(ctx, nil, "n1"); !errors.Is(err, context.Canceled) || !errors.Is(err, ErrSilencesUnavailable) {
		t.Fatalf("cancelled: %v", err)
	}
	// The caller's cancellation is not remembered as an outage.
	if h, err := s.Check(context.Background(), nil, "n1"); err != nil || !h.Held {
		t.Fatalf("after cancel: %+v, %v", h, err)
	}
	if _, err := s.Check(context.Background(), nil, "n1"); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d requests, want 1 (cached)", n)
	}
}

func TestNewSilencesRejects(t *testing.T) {
	notPEM := writeFile(t, "ca", "nope")
	set := func(hc commoncfg.HTTPClientConfig) []AlertmanagerSet {
		return []AlertmanagerSet{{URLs: []string{"https://am"}, HTTPConfig: hc}}
	}
	for name, cfg := range map[string]SilencesConfig{
		"no URL":     {},
		"empty set":  {Alertmanagers: []AlertmanagerSet{{}}},
		"bad scheme": {URLs: []string{"ftp://am:9093"}},
		"no host":    {URLs: []string{"http://"}},
		"query":      {URLs: []string{"http://am:9093/?x=1"}},
		"bearer and basic": {Alertmanagers: set(commoncfg.HTTPClientConfig{
			Authorization: &commoncfg.Authorization{CredentialsFile: "t"}, BasicAuth: &commoncfg.BasicAuth{Username: "u"}})},
		"missing CA": {Alertmanagers: set(commoncfg.HTTPClientConfig{TLSConfig: commoncfg.TLSConfig{CAFile: filepath.Join(t.TempDir(), "none")}})},
		"CA not PEM": {Alertmanagers: set(commoncfg.HTTPClientConfig{TLSConfig: commoncfg.TLSConfig{CAFile: notPEM}})},
	} {
		if _, err := NewSilences(cfg); err == nil {
			t.Errorf("%s: NewSilences accepted %+v", name, cfg)
		}
	}
	// Secret files are read per request, not here: a missing one is a
	// failed (counted, held) check later, not a start-up error.
	if _, err := NewSilences(SilencesConfig{Alertmanagers: set(commoncfg.HTTPClientConfig{
		Authorization: &commoncfg.Authorization{CredentialsFile: filepath.Join(t.TempDir(), "none")}})}); err != nil {
		t.Errorf("missing token file: %v", err)
	}
	s, err := NewSilences(SilencesConfig{
		URLs:          []string{"http://am:9093", "http://am:9093/", "https://am2"},
		Alertmanagers: []AlertmanagerSet{{URLs: []string{"https://am2/", "https://am3"}, Timeout: time.Second}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.endpoints) != 3 || s.ttl != DefaultSilencesCacheTTL {
		t.Fatalf("endpoints %d, ttl %s", len(s.endpoints), s.ttl)
	}
	for i, want := range []time.Duration{DefaultSilencesTimeout, DefaultSilencesTimeout, time.Second} {
		if e := s.endpoints[i]; e.timeout != want || e.http == nil {
			t.Errorf("endpoint %s: timeout %s, want %s", e.base, e.timeout, want)
		}
	}
	if s.endpoints[1].http == s.endpoints[2].http {
		t.Error("two sets share one HTTP client")
	}
}

// TestSilencesTLSBasicAuthAlertmanager: a real Alertmanager behind its own
// --web.config.file (TLS from a private CA, bcrypt basic auth) is read
// through prometheus/common's client, as configured by alertmanagers[].
func TestSilencesTLSBasicAuthAlertmanager(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: starts alertmanager")
	}
	dir := t.TempDir()
	ca, err := testenv.NewTestCA(dir, "am")
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := testenv.NewTestCA(dir, "other")
	if err != nil {
		t.Fatal(err)
	}
	am := testenv.NewAlertmanagerWith(t, testenv.AlertmanagerOptions{
		Web: &testenv.AlertmanagerWeb{CA: ca, Users: map[string]string{"node-healer": "s3cret-pw"}},
	})
	if !strings.HasPrefix(am.URL, "https://") {
		t.Fatalf("URL %s: not TLS", am.URL)
	}
	id := addSilence(t, am, "disk swap", `node="n1"`)

	pw := writeFile(t, "pw", "s3cret-pw\n")
	newChecker := func(t *testing.T, caFile, pwFile string) (*Silences, *prometheus.Registry) {
		t.Helper()
		reg := prometheus.NewRegistry()
		s, err := NewSilences(SilencesConfig{
			Alertmanagers: []AlertmanagerSet{{URLs: []string{am.URL}, Timeout: 5 * time.Second, HTTPConfig: commoncfg.HTTPClientConfig{
				BasicAuth: &commoncfg.BasicAuth{Username: "node-healer", PasswordFile: pwFile},
				TLSConfig: commoncfg.TLSConfig{CAFile: caFile},
			}}},
			CacheTTL: -1, Registerer: reg, Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		return s, reg
	}
	requests := func(t *testing.T, reg *prometheus.Registry, result string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "node_healer_alertmanager_requests_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
		t.Fatalf("no node_healer_alertmanager_requests_total{result=%q}", result)
		return 0
	}

	t.Run("right CA and password", func(t *testing.T) {
		s, reg := newChecker(t, ca.CAFile, pw)
		h := mustCheck(t, s, nil, "n1")
		if !h.Held || !strings.Contains(h.Reason, id) || !strings.Contains(h.Reason, "disk swap") {
			t.Fatalf("n1: %+v; want held by silence %s", h, id)
		}
		if h := mustCheck(t, s, nil, "n2"); h.Held {
			t.Fatalf("n2: %+v; want not held", h)
		}
		if ok, failed := requests(t, reg, "success"), requests(t, reg, "error"); ok != 2 || failed != 0 {
			t.Fatalf("requests success=%v error=%v, want 2, 0", ok, failed)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		bad := writeFile(t, "pw", "not-the-password")
		s, reg := newChecker(t, ca.CAFile, bad)
		h, err := s.Check(context.Background(), nil, "n2")
		if !errors.Is(err, ErrSilencesUnavailable) || !h.Held {
			t.Fatalf("Check = %+v, %v; want held (fail closed) and ErrSilencesUnavailable", h, err)
		}
		if !strings.Contains(err.Error(), "401 Unauthorized") || !strings.Contains(err.Error(), am.URL) {
			t.Fatalf("error %q does not say 401 from %s", err, am.URL)
		}
		if strings.Contains(err.Error(), "not-the-password") {
			t.Fatalf("error shows the password: %q", err)
		}
		if n := requests(t, reg, "error"); n != 1 {
			t.Fatalf("requests_total{result=error} = %v, want 1", n)
		}
		// The password file is read per request: fixed in place, it works.
		if err := os.WriteFile(bad, []byte("s3cret-pw"), 0o600); err != nil {
			t.Fatal(err)
		}
		if h := mustCheck(t, s, nil, "n1"); !h.Held || !strings.Contains(h.Reason, id) {
			t.Fatalf("after fixing the password file: %+v", h)
		}
		if n := requests(t, reg, "success"); n != 1 {
			t.Fatalf("requests_total{result=success} = %v, want 1", n)
		}
	})

	t.Run("wrong CA", func(t *testing.T) {
		s, reg := newChecker(t, otherCA.CAFile, pw)
		h, err := s.Check(context.Background(), nil, "n2")
		if !errors.Is(err, ErrSilencesUnavailable) || !h.Held {
			t.Fatalf("Check = %+v, %v; want held (fail closed) and ErrSilencesUnavailable", h, err)
		}
		if !strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Fatalf("error %q does not name the certificate problem", err)
		}
		if n := requests(t, reg, "error"); n != 1 {
			t.Fatalf("requests_total{result=error} = %v, want 1", n)
		}
	})

	t.Run("from a config file", func(t *testing.T) {
		// Relative paths resolve against the config file's folder.
		cfgDir := t.TempDir()
		caPEM, err := os.ReadFile(ca.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		for name, content := range map[string]string{"am-ca.pem": string(caPEM), "am-password": "s3cret-pw\n", "node-healer.yml": `
webhook: {auth: {allow_unauthenticated: true}}
routes: [{name: reboot, matchers: ['alertname="NodeDown"'], runbook: cordon}]
alertmanagers:
  - static_configs: [{targets: ["` + strings.TrimPrefix(am.URL, "https://") + `"]}]
    scheme: https
    http_config:
      basic_auth: {username: node-healer, password_file: am-password}
      tls_config: {ca_file: am-ca.pem}
`} {
			if err := os.WriteFile(filepath.Join(cfgDir, name), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		c, err := config.LoadFile(filepath.Join(cfgDir, "node-healer.yml"), []string{"cordon"})
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewSilences(SilencesConfig{Alertmanagers: AlertmanagerSets(c.Alertmanagers), CacheTTL: -1})
		if err != nil {
			t.Fatal(err)
		}
		if h := mustCheck(t, s, nil, "n1"); !h.Held || !strings.Contains(h.Reason, id) {
			t.Fatalf("n1: %+v", h)
		}
	})

	t.Run("no credentials", func(t *testing.T) {
		s, err := NewSilences(SilencesConfig{
			Alertmanagers: []AlertmanagerSet{{URLs: []string{am.URL}, HTTPConfig: commoncfg.HTTPClientConfig{TLSConfig: commoncfg.TLSConfig{CAFile: ca.CAFile}}}},
			CacheTTL:      -1, Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Check(context.Background(), nil, "n1"); !errors.Is(err, ErrSilencesUnavailable) || !strings.Contains(err.Error(), "401") {
			t.Fatalf("without basic auth: %v; want 401", err)
		}
	})
}
