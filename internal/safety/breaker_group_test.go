package safety

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// zones is 3 zones × 4 nodes: a-0…a-3, b-0…, c-0….
func zones() staticNodes {
	var out staticNodes
	for _, z := range []string{"a", "b", "c"} {
		for i := range 4 {
			out = append(out, NodeInfo{Name: fmt.Sprintf("%s-%d", z, i), Ready: true,
				Labels: map[string]string{"topology.kubernetes.io/zone": "zone-" + z}})
		}
	}
	return out
}

// TestBreakerPerZone: with group_by zone at 50 %, three alerting nodes of
// one zone (3 of 4 there, 3 of 12 cluster-wide) stop new runs in that
// zone only; the other zones go on; the cluster-wide threshold still
// applies; and a node escalated to a human counts as unhealthy until the
// label is cleared.
func TestBreakerPerZone(t *testing.T) {
	nodes := zones()
	g := newRedisGate(t, Limits{MaxRuns: 10, MaxControlPlaneRuns: 1, SlotTTL: time.Minute,
		BreakerPercent: 50, BreakerMinNodes: 2, BreakerGroupBy: "topology.kubernetes.io/zone"}, nodes)
	g.Firing = &Firing{Redis: g.Redis, Prefix: g.Prefix}
	ctx := context.Background()
	if err := g.Firing.Record(ctx, map[string]string{"fa0": "a-0", "fa1": "a-1", "fa2": "a-2"}, nil); err != nil {
		t.Fatal(err)
	}
	d := admit(t, g, &runbooks.Run{ID: "ra", Node: "a-3", Status: runbooks.StatusPending})
	if d.Allow || d.Kind != "breaker" || !strings.Contains(d.Reason, `topology.kubernetes.io/zone="zone-a"`) || !strings.Contains(d.Reason, "3 of 4") {
		t.Fatalf("run in the bad zone: %+v", d)
	}
	if d := admit(t, g, &runbooks.Run{ID: "rb", Node: "b-0", Status: runbooks.StatusPending}); !d.Allow {
		t.Fatalf("run in a healthy zone: %+v", d)
	}
	st, err := g.Breaker().State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Open || len(st.Groups) != 3 || !st.Groups[0].Open || st.Groups[0].Value != "zone-a" || st.Groups[1].Open || st.Groups[2].Open {
		t.Fatalf("status: %+v", st)
	}

	// Cluster-wide: three more unhealthy nodes in zone b (one escalated,
	// not cleared) make 7 of 12 (run rb holds b-0's slot): over 50 %.
	nodes[5].Labels[runbooks.LabelNeedsAttention] = "true" // b-1
	if err := g.Firing.Record(ctx, map[string]string{"fb2": "b-2", "fb3": "b-3"}, nil); err != nil {
		t.Fatal(err)
	}
	g.Breaker().mu.Lock()
	g.Breaker().lastAt = time.Time{} // no cached evaluation
	g.Breaker().mu.Unlock()
	d = admit(t, g, &runbooks.Run{ID: "rc", Node: "c-0", Status: runbooks.StatusPending})
	if d.Allow || d.Kind != "breaker" || !strings.Contains(d.Reason, "7 of 12") {
		t.Fatalf("cluster-wide threshold with a healthy zone: %+v", d)
	}
}
