package safety

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/node-healer/node-healer/internal/testenv"
)

// Integration tests against a real Alertmanager (TOOLCHAIN.md pins it).

func newTestSilences(t *testing.T, reg prometheus.Registerer, ttl time.Duration, urls ...string) *Silences {
	t.Helper()
	s, err := NewSilences(SilencesConfig{
		URLs:       urls,
		Timeout:    2 * time.Second,
		CacheTTL:   ttl,
		Logger:     slog.New(slog.NewTextHandler(t.Output(), nil)),
		Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustCheck(t *testing.T, s *Silences, alert map[string]string, node string) Hold {
	t.Helper()
	h, err := s.Check(context.Background(), alert, node)
	if err != nil {
		t.Fatalf("Check(%v, %q): %v", alert, node, err)
	}
	return h
}

func addSilence(t *testing.T, am *testenv.Alertmanager, comment string, matchers ...string) string {
	t.Helper()
	id, err := am.AddSilence(context.Background(), matchers, time.Hour, comment)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func expireSilence(t *testing.T, am *testenv.Alertmanager, id string) {
	t.Helper()
	if err := am.ExpireSilence(context.Background(), id); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond every 50 ms for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSilencesAlertmanager(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: starts alertmanager")
	}
	am := testenv.NewAlertmanager(t, "")
	reg := prometheus.NewPedanticRegistry()
	s := newTestSilences(t, reg, -1, am.URL) // no cache: every check asks
	requests := func(result string) float64 {
		if result == amResultError {
			return testutil.ToFloat64(s.client.failed)
		}
		return testutil.ToFloat64(s.client.ok)
	}
	if n, err := testutil.GatherAndCount(reg, "node_healer_alertmanager_requests_total"); err != nil || n != 2 {
		t.Fatalf("requests_total series before any request = %d (%v), want 2 at zero", n, err)
	}

	t.Run("no silences", func(t *testing.T) {
		if h := mustCheck(t, s, map[string]string{"alertname": "NodeKernelDeadlock", "node": "n1"}, "n1"); h.Held {
			t.Fatalf("held without silences: %+v", h)
		}
	})

	t.Run("node silence", func(t *testing.T) {
		id := addSilence(t, am, "hardware swap", `node="n1"`)
		defer expireSilence(t, am, id)
		h := mustCheck(t, s, nil, "n1")
		if !h.Held {
			t.Fatal("n1 not held by node=\"n1\"")
		}
		t.Logf("reason: %s", h.Reason)
		for _, want := range []string{"silence " + id, "by testenv", "hardware swap", `node="n1"`, "until "} {
			if !strings.Contains(h.Reason, want) {
				t.Errorf("reason %q lacks %q", h.Reason, want)
			}
		}
		if d := time.Until(h.Until); d < 50*time.Minute || d > time.Hour {
			t.Errorf("Until = %s (in %s), want about an hour from now", h.Until, d)
		}
		// The alert's own labels name n1 too: held whichever node is asked.
		if h := mustCheck(t, s, map[string]string{"alertname": "X", "node": "n1"}, ""); !h.Held {
			t.Error("alert with node=n1 not held")
		}
		if h := mustCheck(t, s, map[string]string{"alertname": "X", "node": "n2"}, "n2"); h.Held {
			t.Errorf("n2 held: %+v", h)
		}
	})

	t.Run("alert silence", func(t *testing.T) {
		id := addSilence(t, am, "known kernel bug", `alertname="NodeKernelDeadlock"`)
		defer expireSilence(t, am, id)
		if h := mustCheck(t, s, map[string]string{"alertname": "NodeKernelDeadlock", "node": "n3"}, "n3"); !h.Held || !strings.Contains(h.Reason, id) {
			t.Fatalf("NodeKernelDeadlock on n3 not held: %+v", h)
		}
		if h := mustCheck(t, s, map[string]string{"alertname": "NodeDiskFull", "node": "n3"}, "n3"); h.Held {
			t.Fatalf("another alert on n3 held: %+v", h)
		}
	})

	t.Run("regex and negative matchers", func(t *testing.T) {
		id := addSilence(t, am, "rack work", `node=~"worker-.*"`, `rack!~"r1|r2"`, `severity!="info"`)
		defer expireSilence(t, am, id)
		for _, c := range []struct {
			alert map[string]string
			node  string
			held  bool
		}{
			{map[string]string{"node": "worker-3", "rack": "r3", "severity": "critical"}, "worker-3", true},
			{map[string]string{"node": "worker-3", "rack": "r1", "severity": "critical"}, "", false},
			{map[string]string{"node": "worker-3", "rack": "r3", "severity": "info"}, "", false},
			{map[string]string{"node": "xworker-3", "rack": "r3"}, "", false}, // anchored
			{nil, "worker-9", true}, // {node="worker-9"}: no rack, no severity
			{nil, "infra-1", false}, // regex does not match
			{nil, "", false},        // nothing to match
		} {
			if h := mustCheck(t, s, c.alert, c.node); h.Held != c.held {
				t.Errorf("Check(%v, %q).Held = %v, want %v (%s)", c.alert, c.node, h.Held, c.held, h.Reason)
			}
		}
	})

	t.Run("global pause and expiry", func(t *testing.T) {
		cached := newTestSilences(t, nil, 300*time.Millisecond, am.URL)
		id := addSilence(t, am, "change freeze", `node_healer="paused"`)
		for _, node := range []string{"n1", "n2", ""} {
			if h := mustCheck(t, cached, map[string]string{"alertname": "Anything"}, node); !h.Held || !strings.Contains(h.Reason, "change freeze") {
				t.Fatalf("node %q not held by the global pause: %+v", node, h)
			}
		}
		expireSilence(t, am, id)
		start := time.Now()
		eventually(t, "expired pause releases", func() bool {
			return !mustCheck(t, cached, nil, "n1").Held
		})
		t.Logf("released %s after expiry (cache TTL 300ms)", time.Since(start).Round(time.Millisecond))
		if h := mustCheck(t, s, nil, "n1"); h.Held {
			t.Fatalf("uncached checker still held after expiry: %+v", h)
		}
	})

	t.Run("stopped, then restarted", func(t *testing.T) {
		id := addSilence(t, am, "survives restart", `node="n7"`)
		defer expireSilence(t, am, id)
		failedBefore := requests(amResultError)
		am.Stop()
		h, err := s.Check(context.Background(), nil, "n8")
		if !errors.Is(err, ErrSilencesUnavailable) {
			t.Fatalf("Check with Alertmanager stopped: err = %v, want ErrSilencesUnavailable", err)
		}
		if !h.Held {
			t.Errorf("Check with Alertmanager stopped: Hold %+v, want Held (fail closed)", h)
		}
		if requests(amResultError) <= failedBefore {
			t.Error("requests_total{result=error} did not grow")
		}
		if err := am.Restart(); err != nil {
			t.Fatal(err)
		}
		if h := mustCheck(t, s, nil, "n8"); h.Held {
			t.Fatalf("n8 held after restart: %+v", h)
		}
		if h := mustCheck(t, s, nil, "n7"); !h.Held {
			t.Fatal("n7's silence lost over the restart")
		}
	})

	if requests(amResultSuccess) == 0 {
		t.Error("requests_total{result=success} is zero")
	}
}

func TestSilencesCache(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: starts alertmanager")
	}
	am := testenv.NewAlertmanager(t, "")
	s := newTestSilences(t, nil, 0, am.URL) // default TTL: 2 s
	addSilence(t, am, "cache", `node="c1"`)
	for range 20 {
		if h := mustCheck(t, s, nil, "c1"); !h.Held {
			t.Fatal("c1 not held")
		}
	}
	if n := testutil.ToFloat64(s.client.ok); n != 1 {
		t.Fatalf("20 checks within the TTL made %v requests, want 1", n)
	}
}

func TestSilencesHA(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: starts two alertmanagers")
	}
	// Two Alertmanagers without gossip, so each has only its own silences.
	am1 := testenv.NewAlertmanager(t, "")
	am2 := testenv.NewAlertmanager(t, "")
	s := newTestSilences(t, nil, -1, am1.URL, am2.URL)

	addSilence(t, am1, "on am1", `node="h1"`)
	id2 := addSilence(t, am2, "on am2", `node="h2"`)
	for _, node := range []string{"h1", "h2"} {
		if h := mustCheck(t, s, nil, node); !h.Held {
			t.Fatalf("%s not held with both Alertmanagers up", node)
		}
	}
	if h := mustCheck(t, s, nil, "h3"); h.Held {
		t.Fatalf("h3 held: %+v", h)
	}

	am1.Stop()
	h := mustCheck(t, s, nil, "h2") // answered by am2 alone
	if !h.Held || !strings.Contains(h.Reason, id2) {
		t.Fatalf("h2 with am1 down: %+v, want held by %s", h, id2)
	}
	if h := mustCheck(t, s, nil, "h3"); h.Held {
		t.Fatalf("h3 held with am1 down: %+v", h)
	}

	am2.Stop()
	if _, err := s.Check(context.Background(), nil, "h2"); !errors.Is(err, ErrSilencesUnavailable) {
		t.Fatalf("both down: err = %v, want ErrSilencesUnavailable", err)
	}

	if err := am1.Restart(); err != nil {
		t.Fatal(err)
	}
	if h := mustCheck(t, s, nil, "h1"); !h.Held {
		t.Fatal("h1 not held after am1 came back")
	}
}
