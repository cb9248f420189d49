package safety

import (
	"context"
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/locks"
	"github.com/node-healer/node-healer/internal/runbooks"
)

type stubCheck struct {
	name  string
	d     runbooks.Decision
	calls int
}

func (s *stubCheck) Name() string { return s.name }
func (s *stubCheck) Check(context.Context, *runbooks.Run, string, *NodeInfo) (runbooks.Decision, error) {
	s.calls++
	return s.d, nil
}

// TestChecksHoldBeforeBudget: a check that says no holds the run before a
// destructive step, with its kind and reason, and no reboot token is
// taken; a route's checks are asked after the global ones.
func TestChecksHoldBeforeBudget(t *testing.T) {
	g := newRedisGate(t, Limits{MaxRuns: 5, MaxControlPlaneRuns: 1, SlotTTL: time.Minute,
		Reboots: locks.Limit{Rate: 1, Period: time.Hour, Burst: 1}}, workers("n1"))
	global := &stubCheck{name: "global", d: allow}
	route := &stubCheck{name: "ceph", d: runbooks.Decision{Kind: "gate", Reason: "gate ceph: 1 series"}}
	g.Checks = []Check{global}
	g.RouteChecks = func(r string) []Check {
		if r == "reboot" {
			return []Check{route}
		}
		return nil
	}
	run := &runbooks.Run{ID: "r", Node: "n1", Route: "reboot", Status: runbooks.StatusRunning, Admitted: true}
	d, err := g.Destructive(context.Background(), run, "soft-reboot")
	if err != nil || d.Allow || d.Kind != "gate" || d.Reason != "gate ceph: 1 series" || global.calls != 1 || route.calls != 1 {
		t.Fatalf("decision %+v, %v; calls global %d route %d", d, err, global.calls, route.calls)
	}
	if run.Prior["reboot_budget"] != "" {
		t.Fatal("a held run took a reboot token")
	}
	route.d = allow
	if d, err := g.Destructive(context.Background(), run, "soft-reboot"); err != nil || !d.Allow {
		t.Fatalf("all checks allow: %+v, %v", d, err)
	}
	other := &runbooks.Run{ID: "o", Node: "n1", Route: "other", Status: runbooks.StatusRunning, Admitted: true}
	route.d = runbooks.Decision{Kind: "gate", Reason: "no"}
	if d, _ := g.Destructive(context.Background(), other, "drain"); !d.Allow {
		t.Fatalf("another route's gate held this run: %+v", d)
	}
}
