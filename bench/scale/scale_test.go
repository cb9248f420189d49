package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/pipeline"
	"github.com/node-healer/node-healer/internal/runbooks"
)

// TestFleet200 is the fleet-scale regression check of `make test` (issue
// 16): 200 kwok nodes, two receiver replicas, the real pieces. It asserts
// counts, never timings: a storm on 30 % of the nodes takes no
// destructive action and opens the breaker, which closes again (not
// before its hold) once the alerts resolve; a wave on 5 % with a
// concurrency cap of 2 and a reboot rate of 2 per 10 s heals every node
// with one BMC reset each, the cap never exceeded in any sample and the
// resets never closer than the rate allows.
func TestFleet200(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: starts a 200-node control plane and two receivers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin, err := pipeline.BuildReceiver(dir)
	if err != nil {
		t.Fatal(err)
	}
	var progress strings.Builder
	e, err := Start(ctx, Options{Dir: dir, Receiver: bin, Nodes: 200, PodsPerNode: 5, Replicas: 2, Workers: 2,
		MaxConcurrent: 2, RebootCount: 2, RebootBurst: 2, RebootPeriod: 10 * time.Second,
		Hold: 10 * time.Second, HealthyFor: 3 * time.Second, Progress: &progress})
	if err != nil {
		t.Fatalf("start: %v\n%s", err, progress.String())
	}
	t.Cleanup(e.Stop)
	t.Cleanup(func() {
		if t.Failed() {
			for _, r := range e.Replicas {
				t.Logf("--- %s (last 40 lines) ---\n%s", r.Name, tailLines(r.Log, 40))
			}
		}
	})
	t.Logf("start-up:\n%s", progress.String())
	obs, err := NewObserver(ctx, e)
	if err != nil {
		t.Fatal(err)
	}

	stormNodes := e.Nodes[:60]
	storm, err := Storm(ctx, e, obs, stormNodes, 10, 10*time.Second)
	if err != nil {
		t.Fatalf("storm: %v", err)
	}
	t.Logf("storm: %d payloads, breaker open after %s, cordons %d, resets %d, runs %v, codes %v, closed %s after resolve, runs cleared after %s, %g API requests",
		storm.Payloads, storm.OpenAfter, storm.Cordoned, storm.Resets, storm.Runs, storm.Codes, storm.ClosedAfter, storm.Cleared, storm.Requests)
	if storm.OpenAfter <= 0 {
		t.Errorf("storm on %d of %d nodes: the breaker never opened", len(stormNodes), len(e.Nodes))
	}
	if storm.Cordoned != 0 || storm.Resets != 0 {
		t.Errorf("storm: %d storm nodes cordoned, %d BMC resets; want none", storm.Cordoned, storm.Resets)
	}
	if n := storm.Runs[runbooks.StatusRunning] + storm.Runs[runbooks.StatusSucceeded] + storm.Runs[runbooks.StatusFailed] + storm.Runs[runbooks.StatusEscalated]; n != 0 {
		t.Errorf("storm: runs %v; want none started", storm.Runs)
	}
	if storm.Codes[200] != storm.Payloads {
		t.Errorf("storm: webhook status codes %v; want %d × 200", storm.Codes, storm.Payloads)
	}
	if storm.ClosedAfter < e.O.Hold {
		t.Errorf("breaker closed %s after the alerts resolved; want it open for the hold, %s", storm.ClosedAfter, e.O.Hold)
	}
	if storm.Cleared <= 0 {
		t.Errorf("storm runs still deferred 3 minutes after their alerts resolved")
	}

	waveNodes := e.Nodes[60:70]
	wave, err := Wave(ctx, e, obs, waveNodes, 6*time.Minute, nil)
	if err != nil {
		t.Fatalf("wave: %v", err)
	}
	t.Logf("wave: healed %d/%d, max active %d, max cordoned %d (%d samples), %d resets, %d rate violations (min gap %s), total %s (rate bound %s, cap bound %s), %.1f API requests per run %v",
		wave.Healed, wave.Nodes, wave.MaxActive, wave.MaxCordoned, wave.Samples, len(wave.Resets), wave.RateViolations, wave.MinGap,
		wave.Total, wave.RateBound, wave.CapBound, wave.PerRun, top(wave.RequestsBy, 10))
	if wave.Healed != len(waveNodes) {
		t.Errorf("wave: %d of %d nodes healed; not healed: %v", wave.Healed, len(waveNodes), wave.NotHealed)
	}
	if wave.Samples < 10 || wave.MaxActive < 1 {
		t.Errorf("wave: %d samples, most runs at once %d: the sampler did not see the runs", wave.Samples, wave.MaxActive)
	}
	if wave.MaxActive > e.O.MaxConcurrent || wave.MaxCordoned > e.O.MaxConcurrent {
		t.Errorf("wave: %d run slots held / %d nodes cordoned at once; cap %d", wave.MaxActive, wave.MaxCordoned, e.O.MaxConcurrent)
	}
	if len(wave.Resets) != len(waveNodes) {
		t.Errorf("wave: %d BMC resets for %d nodes; want one soft reboot each", len(wave.Resets), len(waveNodes))
	}
	if wave.RateViolations != 0 {
		t.Errorf("wave: %d pairs of resets closer than %d per %s allows: %v", wave.RateViolations, e.O.RebootCount, e.O.RebootPeriod, wave.Resets)
	}
	if others := len(e.Resets(e.Nodes)) - len(wave.Resets); others != 0 {
		t.Errorf("%d BMC resets on nodes outside the wave", others)
	}
}

func TestCheckGCRA(t *testing.T) {
	base := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	at := func(s ...float64) []time.Time {
		var out []time.Time
		for _, x := range s {
			out = append(out, base.Add(time.Duration(x*float64(time.Second))))
		}
		return out
	}
	T := 5 * time.Second
	for _, c := range []struct {
		ts   []time.Time
		b    int
		want int
	}{
		{at(0, 0, 5, 10, 15), 2, 0},  // a burst of 2, then one per T
		{at(0, 0, 0), 2, 1},          // three at once with a burst of 2
		{at(0, 0, 3.5, 10), 2, 1},    // the third came 1.5 s early
		{at(0, 0, 4.5, 10), 2, 0},    // within the 1 s tolerance
		{at(0, 5, 10, 15, 16), 1, 1}, // the last one is early
		{at(0, 20, 20, 20), 2, 1},    // a refilled burst is 2, not 3
		{at(0, 6, 7, 12, 17), 2, 0},  // a burst of 2 within the rate
		{at(0, 6, 7, 12, 13), 2, 1},  // 5 in 13 s: a burst of 2 + 2 per 10 s allow 4
		{at(0, 1, 2, 3, 4, 5), 3, 2}, // 6 in 5 s with a burst of 3
		{nil, 2, 0},
	} {
		got, _ := checkGCRA(c.ts, T, c.b, time.Second)
		if (got == 0) != (c.want == 0) {
			t.Errorf("checkGCRA(%v, burst %d) = %d violations; want %d", c.ts, c.b, got, c.want)
		}
	}
}

func TestPayloadBatches(t *testing.T) {
	var alerts []Alert
	for i := range 250 {
		alerts = append(alerts, NodeAlert("NodeKernelDeadlock", NodeName(i), time.Unix(0, 0)))
	}
	b := Batches(alerts, 100)
	if len(b) != 3 {
		t.Fatalf("%d payloads for 250 alerts of at most 100; want 3", len(b))
	}
	if n := strings.Count(string(b[2]), `"fingerprint"`); n != 50 {
		t.Errorf("last payload has %d alerts; want 50", n)
	}
	if a, c := NodeAlert("X", "n1", time.Unix(0, 0)), NodeAlert("X", "n2", time.Unix(0, 0)); a.Fingerprint == c.Fingerprint {
		t.Errorf("two nodes share fingerprint %s", a.Fingerprint)
	}
}

func tailLines(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprint(err)
	}
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
