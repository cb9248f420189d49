package runstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/testenv"
)

// TestOnRedisCluster runs every script and multi-key read of the store
// against a real three-master Redis Cluster: Save (run record, fence hash
// and index in one script), the fenced refusal, Load, List and Active
// (MGET over many runs). Any CROSSSLOT fails it.
func TestOnRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server (integration)")
	}
	_, rdb := testenv.NewRedisCluster(t)
	ctx := context.Background()
	s := New(rdb, "t", time.Hour)
	// Enough runs that their keys would spread over every master.
	const n = 30
	start := time.Now().Add(-time.Minute)
	for i := range n {
		status := runbooks.StatusRunning
		if i%2 == 0 {
			status = runbooks.StatusSucceeded
		}
		r := &runbooks.Run{ID: fmt.Sprintf("r%02d", i), Node: fmt.Sprintf("n%d", i), Runbook: "reboot",
			Status: status, Next: 1, Fence: 100, Created: start.Add(time.Duration(i) * time.Second)}
		testenv.ClusterOK(t, "save "+r.ID, s.Save(ctx, r))
	}

	got, err := s.Load(ctx, "r01")
	testenv.ClusterOK(t, "load", err)
	if got.Node != "n1" || got.Fence != 100 {
		t.Fatalf("load: %+v", got)
	}
	list, err := s.List(ctx, n)
	testenv.ClusterOK(t, "list", err)
	if len(list) != n || list[0].ID != fmt.Sprintf("r%02d", n-1) {
		t.Fatalf("list: %d runs, first %v; want %d, newest first", len(list), list[0].ID, n)
	}
	active, corrupt, err := s.Active(ctx)
	testenv.ClusterOK(t, "active", err)
	if len(active) != n/2 || corrupt != 0 || active[0].ID != "r01" {
		t.Fatalf("active: %d runs (%d corrupt), want %d oldest first", len(active), corrupt, n/2)
	}

	// Fencing holds on Cluster as on one server.
	newer := *got
	newer.Next, newer.Fence = 3, 200
	testenv.ClusterOK(t, "newer save", s.Save(ctx, &newer))
	stale := *got
	stale.Next = 2
	if err := s.Save(ctx, &stale); !errors.Is(err, runbooks.ErrStaleWrite) {
		testenv.ClusterOK(t, "stale save", err)
		t.Fatalf("stale save: %v, want ErrStaleWrite", err)
	}
	final := newer
	final.Status = runbooks.StatusFailed
	testenv.ClusterOK(t, "final save", s.Save(ctx, &final))
	again := final
	again.Status, again.Fence = runbooks.StatusRunning, 300
	if err := s.Save(ctx, &again); !errors.Is(err, runbooks.ErrStaleWrite) {
		testenv.ClusterOK(t, "rewrite of a final record", err)
		t.Fatalf("rewrite of a final record: %v, want ErrStaleWrite", err)
	}
	if got, err := s.Load(ctx, "r01"); err != nil || got.Status != runbooks.StatusFailed || got.Fence != 200 {
		t.Fatalf("after a refused rewrite: %+v %v", got, err)
	}
}
