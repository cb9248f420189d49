package runstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/testenv"
)

// TestSaveReplicated: with MinReplicas 1 a decision save is confirmed only
// once the replica has it; with the replica frozen it is written on the
// primary but reported ErrNotReplicated within the timeout.
func TestSaveReplicated(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server (integration)")
	}
	primary, replica := testenv.NewReplicatedRedis(t)
	ctx := context.Background()
	rc := replica.Client(0)
	defer rc.Close()
	pc := primary.Client(0)
	defer pc.Close()
	s := New(pc, "t", time.Hour, Options{MinReplicas: 1, ReplicationTimeout: 300 * time.Millisecond})
	run := &runbooks.Run{ID: "r1", Node: "n1", Status: runbooks.StatusRunning, Fence: 5, Created: time.Now(),
		Prior: map[string]string{"power_cycle_sent": "now"}}
	if err := s.SaveReplicated(ctx, run); err != nil {
		t.Fatalf("save with a live replica: %v", err)
	}
	if n, _ := rc.Exists(ctx, s.key("r1")).Result(); n != 1 {
		t.Fatal("the replica does not have a confirmed decision")
	}
	if err := replica.Freeze(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = replica.Thaw() }()
	run.Next = 1
	if err := s.SaveReplicated(ctx, run); !errors.Is(err, runbooks.ErrNotReplicated) {
		t.Fatalf("save with the replica frozen: %v, want ErrNotReplicated", err)
	}
	// Plain saves do not wait.
	start := time.Now()
	if err := s.Save(ctx, run); err != nil || time.Since(start) > 250*time.Millisecond {
		t.Fatalf("plain save: %v after %s", err, time.Since(start))
	}
}
