package safety

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/locks"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/runstore"
	"github.com/node-healer/node-healer/internal/testenv"
)

// TestOnRedisCluster runs the gate's every Redis operation against a real
// three-master Redis Cluster: pause and resume, firing records (pipeline),
// the breaker script and state, Admit (window, run and control-plane
// slots), Destructive (the reboot rate limiter), KeepSlots, Status (with
// the run store's List) and Done. Any CROSSSLOT fails it.
func TestOnRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server (integration)")
	}
	_, rdb := testenv.NewRedisCluster(t)
	ctx := context.Background()
	nodes := workers("n1", "n2", "n3", "n4")
	for _, cp := range []string{"cp1", "cp2", "cp3"} {
		nodes = append(nodes, NodeInfo{Name: cp, Ready: true, ControlPlane: true})
	}
	firing := &Firing{Redis: rdb, Prefix: "t"}
	g := &Gate{L: Limits{MaxRuns: 3, MaxControlPlaneRuns: 1, SlotTTL: time.Minute, NodeRuns: 2, NodeWindow: time.Hour,
		Reboots: locks.Limit{Rate: 1, Period: time.Hour, Burst: 1}, BreakerPercent: 90, BreakerHold: time.Minute},
		Redis: rdb, Prefix: "t", Nodes: nodes, Firing: firing, Log: slog.New(slog.DiscardHandler),
		Slots: locks.NewSlots(rdb, "t"), Rate: locks.NewRateLimiter(rdb, "t"), Window: locks.NewWindow(rdb, "t")}
	store := runstore.New(rdb, "t", time.Hour)

	testenv.ClusterOK(t, "pause", Pause(ctx, rdb, "t", "test", "cluster"))
	p, err := Paused(ctx, rdb, "t")
	testenv.ClusterOK(t, "paused", err)
	a := &runbooks.Run{ID: "a", Node: "n1", Status: runbooks.StatusRunning, Created: time.Now(), Fence: 1}
	d, err := g.Admit(ctx, a)
	testenv.ClusterOK(t, "admit while paused", err)
	if p == nil || d.Allow || d.Kind != "paused" {
		t.Fatalf("paused %v, admit %+v; want refused", p, d)
	}
	testenv.ClusterOK(t, "resume", Resume(ctx, rdb, "t"))

	testenv.ClusterOK(t, "record firing", firing.Record(ctx, map[string]string{"fp1": "n1", "fp2": "n2", "fp3": "n3"}, []string{"fp0"}))
	testenv.ClusterOK(t, "record resolved", firing.Record(ctx, nil, []string{"fp3"}))
	fn, err := firing.Nodes(ctx)
	testenv.ClusterOK(t, "firing nodes", err)
	if len(fn) != 2 {
		t.Fatalf("firing nodes %v, want n1 and n2", fn)
	}

	b := &runbooks.Run{ID: "b", Node: "n2", Status: runbooks.StatusRunning, Created: time.Now(), Fence: 1}
	cp := &runbooks.Run{ID: "cp", Node: "cp1", Status: runbooks.StatusRunning, Created: time.Now(), Fence: 1}
	c := &runbooks.Run{ID: "c", Node: "n3", Status: runbooks.StatusRunning, Created: time.Now(), Fence: 1}
	for _, r := range []*runbooks.Run{a, b, cp} {
		d, err := g.Admit(ctx, r)
		testenv.ClusterOK(t, "admit "+r.ID, err)
		if !d.Allow {
			t.Fatalf("admit %s: %+v", r.ID, d)
		}
		r.Admitted = true
		testenv.ClusterOK(t, "save "+r.ID, store.Save(ctx, r))
	}
	d, err = g.Admit(ctx, c)
	testenv.ClusterOK(t, "admit over the cap", err)
	if d.Allow || d.Kind != "concurrency" {
		t.Fatalf("fourth run: %+v, want the concurrency cap", d)
	}
	st, err := g.Breaker().State(ctx)
	testenv.ClusterOK(t, "breaker state", err)
	if st.Open || st.Total != len(nodes) || st.Evaluated.IsZero() {
		t.Fatalf("breaker %+v", st)
	}

	d, err = g.Destructive(ctx, a, "soft-reboot")
	testenv.ClusterOK(t, "destructive", err)
	if !d.Allow {
		t.Fatalf("first reboot: %+v", d)
	}
	d, err = g.Destructive(ctx, b, "power-cycle")
	testenv.ClusterOK(t, "destructive over the budget", err)
	if d.Allow || d.Kind != "rate" {
		t.Fatalf("second reboot: %+v, want the rate limit", d)
	}
	testenv.ClusterOK(t, "refresh", g.Refresh(ctx, cp))

	status, err := g.Status(ctx, store)
	testenv.ClusterOK(t, "status", err)
	if len(status.ActiveRuns) != 3 || status.Reboots.Remaining != 0 {
		t.Fatalf("status: %+v", status)
	}
	b.Status = runbooks.StatusSucceeded
	testenv.ClusterOK(t, "save final", store.Save(ctx, b))
	renewed, freed, err := g.KeepSlots(ctx, store)
	testenv.ClusterOK(t, "keep slots", err)
	if freed != 1 || renewed < 2 {
		t.Fatalf("keep slots: renewed %d freed %d; want b's slot freed, a and cp renewed", renewed, freed)
	}
	g.Done(ctx, cp)
	hs, err := g.ActiveRuns(ctx)
	testenv.ClusterOK(t, "active runs", err)
	if len(hs) != 1 {
		t.Fatalf("active runs %v, want a only", hs)
	}
}
