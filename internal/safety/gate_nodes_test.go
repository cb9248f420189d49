package safety

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// countingNodes is a NodeLister that counts its lists; set err to fail.
type countingNodes struct {
	nodes staticNodes
	lists atomic.Int64
	err   error
}

func (c *countingNodes) ListNodes() ([]NodeInfo, error) {
	c.lists.Add(1)
	if c.err != nil {
		return nil, c.err
	}
	return c.nodes, nil
}

// TestAdmitReusesTheNodeList: with NodeListCache, admissions within it
// list the nodes once (still deciding on each node's own labels: the
// opt-out label holds), a list failure is not cached (fail closed, then
// a fresh list), and Destructive lists afresh every time.
func TestAdmitReusesTheNodeList(t *testing.T) {
	nodes := workers("n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9", "n10")
	nodes[3].Labels = map[string]string{"node-healer.io/exclude": "true"}
	lister := &countingNodes{nodes: nodes}
	g := newRedisGate(t, Limits{MaxRuns: 100, MaxControlPlaneRuns: 1, SlotTTL: time.Minute, BreakerPercent: 50, BreakerHold: time.Minute,
		ExcludeLabel: "node-healer.io/exclude"}, nil)
	g.Nodes, g.NodeListCache = lister, time.Hour
	ctx := context.Background()
	for i, n := range []string{"n1", "n2", "n3", "n5", "n6", "n1"} {
		if d := admit(t, g, &runbooks.Run{ID: "r" + string(rune('a'+i)), Node: n, Status: runbooks.StatusPending, DryRun: true}); !d.Allow {
			t.Fatalf("admit %s: %+v", n, d)
		}
	}
	if d := admit(t, g, &runbooks.Run{ID: "rx", Node: "n4", Status: runbooks.StatusPending, DryRun: true}); d.Allow || d.Kind != "excluded" {
		t.Fatalf("admit of the opted-out n4 from the cached list: %+v, want excluded", d)
	}
	// The breaker is handed the same list: no list of its own.
	if n := lister.lists.Load(); n != 1 {
		t.Fatalf("7 admissions listed the nodes %d times, want 1", n)
	}
	for range 3 {
		if _, err := g.Destructive(ctx, &runbooks.Run{ID: "ra", Node: "n1", Status: runbooks.StatusRunning, DryRun: true}, "drain"); err != nil {
			t.Fatal(err)
		}
	}
	if n := lister.lists.Load(); n != 4 {
		t.Fatalf("3 destructive checks: %d lists in all, want 1 + 3 (always afresh)", n)
	}

	// A failing list fails the admission and is not cached.
	g2 := newRedisGate(t, Limits{MaxRuns: 100, MaxControlPlaneRuns: 1, SlotTTL: time.Minute}, nil)
	bad := &countingNodes{nodes: nodes, err: errors.New("cache not synced")}
	g2.Nodes, g2.NodeListCache = bad, time.Hour
	if _, err := g2.Admit(ctx, &runbooks.Run{ID: "r1", Node: "n1", Status: runbooks.StatusPending, DryRun: true}); err == nil {
		t.Fatal("admit with a failing node list: no error")
	}
	bad.err = nil
	if d := admit(t, g2, &runbooks.Run{ID: "r1", Node: "n1", Status: runbooks.StatusPending, DryRun: true}); !d.Allow {
		t.Fatalf("admit once the list works: %+v", d)
	}
	if n := bad.lists.Load(); n != 2 {
		t.Fatalf("%d lists, want 2 (the failure was not cached)", n)
	}
}
