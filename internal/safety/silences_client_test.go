package safety

import (
	"context"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	commoncfg "github.com/prometheus/common/config"
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
