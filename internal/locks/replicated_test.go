package locks_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/locks"
	"github.com/node-healer/node-healer/internal/testenv"
)

// TestAcquireWaitsForReplicas: with MinReplicas 1 a lease counts only once
// a replica acknowledged it (WAIT on the acquire's connection). With the
// replica frozen — a failover now could forget the lease — acquisition
// fails with ErrNotReplicated within the timeout, the lock is released
// (another worker may take it once replication is back), and it is counted.
func TestAcquireWaitsForReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server (integration)")
	}
	primary, replica := testenv.NewReplicatedRedis(t)
	ctx := context.Background()
	rc := replica.Client(0)
	defer rc.Close()
	pc := primary.Client(0)
	defer pc.Close()
	reg := prometheus.NewRegistry()
	l := locks.New(pc, "t", locks.Options{Registerer: reg, MinReplicas: 1, ReplicationTimeout: 300 * time.Millisecond})
	lease, err := l.Acquire(ctx, "node:n1", time.Minute)
	if err != nil {
		t.Fatalf("acquire with a live replica: %v", err)
	}
	// The replica has the lease: a failover to it keeps the lock.
	if v, err := rc.Get(ctx, "t:lock:{node:n1}").Result(); err != nil || !strings.HasPrefix(v, lease.Token()+":") {
		t.Fatalf("replica's copy of the lock: %q %v", v, err)
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}

	if err := replica.Freeze(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = replica.Thaw() }()
	start := time.Now()
	_, err = l.Acquire(ctx, "node:n2", time.Minute)
	took := time.Since(start)
	if !errors.Is(err, locks.ErrNotReplicated) {
		t.Fatalf("acquire with the replica frozen: %v, want ErrNotReplicated", err)
	}
	if took < 250*time.Millisecond || took > 3*time.Second {
		t.Errorf("gave up after %s, want about the 300ms replication timeout", took)
	}
	if n, _ := pc.Exists(ctx, "t:lock:{node:n2}").Result(); n != 0 {
		t.Errorf("an unacknowledged lease was left behind on the primary")
	}
	if v := counterValue(t, reg, "not_replicated"); v != 1 {
		t.Errorf("node_healer_lock_acquire_total{result=not_replicated} = %v, want 1", v)
	}
}

// counterValue reads node_healer_lock_acquire_total{result} from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "node_healer_lock_acquire_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "result" && lp.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no series result=%s", result)
	return 0
}

// newReplicated starts a primary with one synced replica and returns a
// client on the primary.
func newReplicated(t testing.TB) *redis.Client {
	t.Helper()
	primary, _ := testenv.NewReplicatedRedis(t)
	c := primary.Client(0)
	t.Cleanup(func() { c.Close() })
	return c
}
