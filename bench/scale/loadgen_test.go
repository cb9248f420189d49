package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestMain lets the test binary play the load sender's process, as the
// scale-bench binary does (loadgen.go).
func TestMain(m *testing.M) {
	if os.Getenv(loadgenEnv) == "1" {
		if err := loadgenMain(os.Stdin, os.Stdout); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestLoadSenderProcess: the load sent from a child process reaches both
// webhooks round robin, with the token and the body, at the rate asked,
// and the child's latencies and codes come back; a webhook answering 503
// is counted as such; a job the child cannot run is an error that says why.
func TestLoadSenderProcess(t *testing.T) {
	var ok, bad, unauth atomic.Int64
	handler := func(code int, n *atomic.Int64) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer s3cret" || r.URL.Path != "/webhook" {
				unauth.Add(1)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			n.Add(1)
			w.WriteHeader(code)
		}
	}
	a := httptest.NewServer(handler(http.StatusOK, &ok))
	defer a.Close()
	b := httptest.NewServer(handler(http.StatusServiceUnavailable, &bad))
	defer b.Close()
	ctx := context.Background()
	out, err := sendFromProcess(ctx, loadJob{URLs: []string{a.URL, b.URL}, Token: "s3cret", Body: []byte(`{}`), Rate: 40, For: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if out.Sent < 30 || out.Sent > 41 || out.Late != 0 {
		t.Errorf("sent %d (late %d) at 40/s for 1 s", out.Sent, out.Late)
	}
	if len(out.Latencies) != out.Sent || out.Codes[200]+out.Codes[503] != out.Sent || out.Codes[200]-out.Codes[503] > 1 || out.Codes[503]-out.Codes[200] > 1 {
		t.Errorf("latencies %d, codes %v for %d sent; want one each, split evenly", len(out.Latencies), out.Codes, out.Sent)
	}
	if len(out.PerURL) != 2 || len(out.PerURL[0]) != out.Codes[200] || len(out.PerURL[1]) != out.Codes[503] {
		t.Errorf("per webhook: %d latency lists; want 2, of %v", len(out.PerURL), out.Codes)
	}
	if ok.Load() != int64(out.Codes[200]) || bad.Load() != int64(out.Codes[503]) || unauth.Load() != 0 {
		t.Errorf("servers saw %d / %d (and %d without the token); the child counted %v", ok.Load(), bad.Load(), unauth.Load(), out.Codes)
	}
	if _, err := sendFromProcess(ctx, loadJob{URLs: []string{a.URL}, Rate: 0}); err == nil || !strings.Contains(err.Error(), "rate 0") {
		t.Errorf("a job with rate 0: %v; want an error naming it", err)
	}
}
