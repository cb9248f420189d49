package locks_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/locks"
	"github.com/node-healer/node-healer/internal/testenv"
)

// TestOnRedisCluster runs every script of the package against a real
// three-master Redis Cluster: lock acquire (lock and fence keys in one
// script), a replayed acquire, holder, refresh, Keep, release and the
// next fence; slots; the rate limiter; the window. Names are spread so
// their keys land on every master. Any CROSSSLOT fails it.
func TestOnRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server (integration)")
	}
	_, rdb := testenv.NewRedisCluster(t)
	ctx := context.Background()

	t.Run("locks", func(t *testing.T) {
		l := locks.New(rdb, "t")
		for i := range 10 {
			name := fmt.Sprintf("node:n%d", i)
			lease, err := l.Acquire(ctx, name, 2*time.Second)
			testenv.ClusterOK(t, "acquire "+name, err)
			if _, err := l.Acquire(ctx, name, time.Second); !errors.Is(err, locks.ErrNotAcquired) {
				testenv.ClusterOK(t, "second acquire", err)
				t.Fatalf("second acquire of %s: %v, want ErrNotAcquired", name, err)
			}
			replay, err := l.AcquireToken(ctx, name, lease.Token(), 2*time.Second)
			testenv.ClusterOK(t, "replayed acquire", err)
			if replay.Fence() != lease.Fence() {
				t.Fatalf("replayed acquire: fence %d, want %d", replay.Fence(), lease.Fence())
			}
			tok, fence, _, err := l.Holder(ctx, name)
			testenv.ClusterOK(t, "holder", err)
			if tok != lease.Token() || fence != lease.Fence() {
				t.Fatalf("holder %s/%d, want %s/%d", tok, fence, lease.Token(), lease.Fence())
			}
			testenv.ClusterOK(t, "refresh", lease.Refresh(ctx, 2*time.Second))
			kept, stop := lease.Keep(ctx)
			stop()
			if err := context.Cause(kept); err != nil && !errors.Is(err, context.Canceled) {
				t.Fatalf("keep: %v", err)
			}
			testenv.ClusterOK(t, "release", lease.Release(ctx))
			next, err := l.Acquire(ctx, name, time.Second)
			testenv.ClusterOK(t, "acquire again", err)
			if next.Fence() <= lease.Fence() {
				t.Fatalf("fence %d after %d: not increasing", next.Fence(), lease.Fence())
			}
			testenv.ClusterOK(t, "release again", next.Release(ctx))
		}
	})

	t.Run("slots", func(t *testing.T) {
		s := locks.NewSlots(rdb, "t")
		for _, pool := range []string{"runs", "control-plane", "p1", "p2", "p3"} {
			ok, _, err := s.Acquire(ctx, pool, "h1", 1, time.Minute)
			testenv.ClusterOK(t, "slot acquire", err)
			if !ok {
				t.Fatalf("%s: first slot refused", pool)
			}
			ok, _, err = s.Acquire(ctx, pool, "h2", 1, time.Minute)
			testenv.ClusterOK(t, "slot acquire (full)", err)
			if ok {
				t.Fatalf("%s: second slot over a limit of 1", pool)
			}
			testenv.ClusterOK(t, "slot refresh", s.Refresh(ctx, pool, "h1", time.Minute))
			hs, err := s.Holders(ctx, pool)
			testenv.ClusterOK(t, "slot holders", err)
			if fmt.Sprint(hs) != "[h1]" {
				t.Fatalf("%s: holders %v", pool, hs)
			}
			testenv.ClusterOK(t, "slot release", s.Release(ctx, pool, "h1"))
		}
	})

	t.Run("rate", func(t *testing.T) {
		r := locks.NewRateLimiter(rdb, "t")
		lim := locks.Limit{Rate: 1, Period: time.Hour, Burst: 1}
		for _, key := range []string{"reboots", "k1", "k2", "k3"} {
			p, err := r.Peek(ctx, key, lim)
			testenv.ClusterOK(t, "peek", err)
			a, err := r.Allow(ctx, key, lim)
			testenv.ClusterOK(t, "allow", err)
			b, err := r.Allow(ctx, key, lim)
			testenv.ClusterOK(t, "allow again", err)
			if !p.Allowed || !a.Allowed || b.Allowed {
				t.Fatalf("%s: peek %v, allow %v, again %v; want true true false", key, p.Allowed, a.Allowed, b.Allowed)
			}
		}
	})

	t.Run("window", func(t *testing.T) {
		w := locks.NewWindow(rdb, "t")
		for _, key := range []string{"node:n1", "node:n2", "node:n3", "node:n4"} {
			for _, id := range []string{"r1", "r2", "r1"} {
				_, err := w.Record(ctx, key, id, time.Hour)
				testenv.ClusterOK(t, "window record", err)
			}
			n, err := w.Count(ctx, key, time.Hour)
			testenv.ClusterOK(t, "window count", err)
			if n != 2 {
				t.Fatalf("%s: count %d, want 2", key, n)
			}
			oldest, err := w.Oldest(ctx, key, time.Hour)
			testenv.ClusterOK(t, "window oldest", err)
			if oldest.IsZero() {
				t.Fatalf("%s: no oldest", key)
			}
		}
	})
}
