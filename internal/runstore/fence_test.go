package runstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/testenv"
)

// TestSaveIsFenced: a writer with a lower fence than the stored record's
// (a replica that woke up after a takeover) is refused and counted, and a
// final record is never rewritten, whatever the fence.
func TestSaveIsFenced(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server (integration)")
	}
	c := testenv.NewRedisClient(t)
	reg := prometheus.NewRegistry()
	s := New(c, "t", time.Hour, Options{Registerer: reg})
	ctx := context.Background()
	run := &runbooks.Run{ID: "r1", Node: "n1", Runbook: "reboot", Status: runbooks.StatusRunning, Next: 1, Fence: 100, Created: time.Now()}
	if err := s.Save(ctx, run); err != nil {
		t.Fatal(err)
	}
	// The new holder (fence 200) moves the run on.
	newer := *run
	newer.Next, newer.Fence = 3, 200
	if err := s.Save(ctx, &newer); err != nil {
		t.Fatal(err)
	}
	// The old holder wakes up and tries to save its view.
	stale := *run
	stale.Next = 2
	if err := s.Save(ctx, &stale); !errors.Is(err, runbooks.ErrStaleWrite) {
		t.Fatalf("stale save: %v, want ErrStaleWrite", err)
	}
	if got, _ := s.Load(ctx, "r1"); got.Next != 3 || got.Fence != 200 {
		t.Fatalf("stored next %d fence %d after a stale write; want 3/200", got.Next, got.Fence)
	}
	// The same holder saves again (equal fence): fine.
	newer.Next = 4
	if err := s.Save(ctx, &newer); err != nil {
		t.Fatal(err)
	}
	// Final: immutable, even for a higher fence.
	newer.Status = runbooks.StatusSucceeded
	if err := s.Save(ctx, &newer); err != nil {
		t.Fatal(err)
	}
	again := newer
	again.Status, again.Fence = runbooks.StatusRunning, 300
	if err := s.Save(ctx, &again); !errors.Is(err, runbooks.ErrStaleWrite) {
		t.Fatalf("rewrite of a final record: %v, want ErrStaleWrite", err)
	}
	if got, _ := s.Load(ctx, "r1"); got.Status != runbooks.StatusSucceeded {
		t.Fatalf("final record changed to %s", got.Status)
	}
	if n := testutil.ToFloat64(s.stale); n != 2 {
		t.Errorf("node_healer_stale_writes_total = %v, want 2", n)
	}
	if n, err := testutil.GatherAndCount(reg, "node_healer_stale_writes_total"); err != nil || n != 1 {
		t.Errorf("metric registered: %d %v", n, err)
	}
}
