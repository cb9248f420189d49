package queue

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/testenv"
)

// TestEnqueueWaitsForReplicas: with MinReplicas 1, Enqueue confirms only
// what a replica acknowledged. With the replica frozen it returns
// ErrNotReplicated (the webhook answers 503); Alertmanager's retry — all
// duplicates now — is confirmed only once the replica has the original
// entries, not merely because the dedupe keys exist.
func TestEnqueueWaitsForReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server (integration)")
	}
	primary, replica := testenv.NewReplicatedRedis(t)
	ctx := context.Background()
	rc := replica.Client(0)
	defer rc.Close()
	pc := primary.Client(0)
	defer pc.Close()
	q := New(pc, Options{Prefix: "t", MinReplicas: 1, ReplicationTimeout: 300 * time.Millisecond})

	if added, err := q.Enqueue(ctx, []Job{job("a")}); err != nil || !added[0] {
		t.Fatalf("enqueue with a live replica: %v %v", added, err)
	}
	if n, _ := rc.XLen(ctx, q.Stream()).Result(); n != 1 {
		t.Fatalf("replica has %d entries after a confirmed enqueue, want 1", n)
	}

	if err := replica.Freeze(); err != nil {
		t.Fatal(err)
	}
	thawed := false
	defer func() {
		if !thawed {
			_ = replica.Thaw()
		}
	}()
	if _, err := q.Enqueue(ctx, []Job{job("b")}); !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("enqueue with the replica frozen: %v, want ErrNotReplicated", err)
	}
	// Alertmanager retries while the replica is still frozen: a duplicate
	// now, but still not confirmed.
	if _, err := q.Enqueue(ctx, []Job{job("b")}); !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("retried enqueue with the replica still frozen: %v, want ErrNotReplicated", err)
	}
	if err := replica.Thaw(); err != nil {
		t.Fatal(err)
	}
	thawed = true
	var added []bool
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if added, err = q.Enqueue(ctx, []Job{job("b")}); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || added[0] {
		t.Fatalf("retry after the replica is back: added %v err %v; want a confirmed duplicate", added, err)
	}
	if n, _ := rc.XLen(ctx, q.Stream()).Result(); n != 2 {
		t.Fatalf("replica has %d entries once the retry is confirmed, want 2", n)
	}
}
