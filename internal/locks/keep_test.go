package locks_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/node-healer/node-healer/internal/locks"
)

func TestKeepRenewsPastSeveralTTLs(t *testing.T) {
	_, rdb := newRedis(t)
	l := locks.New(rdb, "t")
	ctx := context.Background()
	const ttl = 300 * time.Millisecond

	lease, err := l.Acquire(ctx, "node-a", ttl)
	if err != nil {
		t.Fatal(err)
	}
	kept, stop := lease.Keep(ctx)
	time.Sleep(4 * ttl)
	if err := context.Cause(kept); err != nil {
		t.Fatalf("kept context ended after %s: %v", 4*ttl, err)
	}
	if _, err := l.Acquire(ctx, "node-a", ttl); !errors.Is(err, locks.ErrNotAcquired) {
		t.Fatalf("renewed lease: other Acquire err = %v, want ErrNotAcquired", err)
	}
	stop()
	stop() // idempotent
	if err := context.Cause(kept); !errors.Is(err, context.Canceled) || errors.Is(err, locks.ErrLeaseLost) {
		t.Errorf("after stop: cause = %v, want context.Canceled", err)
	}
	if err := lease.Release(ctx); err != nil {
		t.Errorf("Release after stop: %v", err)
	}
}

func TestKeepCancelsWhenStolen(t *testing.T) {
	_, rdb := newRedis(t)
	reg := prometheus.NewRegistry()
	l := locks.New(rdb, "t", locks.Options{Registerer: reg})
	ctx := context.Background()
	const ttl = 300 * time.Millisecond

	for _, tc := range []struct {
		name  string
		steal func(key string) error
	}{
		{"deleted", func(key string) error { return rdb.Del(ctx, key).Err() }},
		{"overwritten", func(key string) error {
			return rdb.Set(ctx, key, "ffffffffffffffffffffffffffffffff:99", time.Minute).Err()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "node-" + tc.name
			lease, err := l.Acquire(ctx, name, ttl)
			if err != nil {
				t.Fatal(err)
			}
			kept, stop := lease.Keep(ctx)
			defer stop()
			if err := tc.steal(l.LockKey(name)); err != nil {
				t.Fatal(err)
			}
			stolen := time.Now()
			select {
			case <-kept.Done():
			case <-time.After(ttl):
				t.Fatalf("kept context still live %s after the lease was stolen", ttl)
			}
			if took := time.Since(stolen); took > ttl/3+100*time.Millisecond {
				t.Errorf("noticed after %s, want within one renewal interval (%s)", took, ttl/3)
			}
			if err := context.Cause(kept); !errors.Is(err, locks.ErrLeaseLost) {
				t.Errorf("cause = %v, want ErrLeaseLost", err)
			}
		})
	}
	wantMetrics(t, reg, 2, 0, 0, 2)
}

func TestKeepCancelsBeforeExpiryWhenRedisIsDown(t *testing.T) {
	r, rdb := newRedis(t)
	reg := prometheus.NewRegistry()
	l := locks.New(rdb, "t", locks.Options{Registerer: reg})
	ctx := context.Background()
	const ttl = 600 * time.Millisecond

	lease, err := l.Acquire(ctx, "node-a", ttl)
	if err != nil {
		t.Fatal(err)
	}
	kept, stop := lease.Keep(ctx)
	defer stop()
	time.Sleep(ttl / 2) // at least one renewal
	stopping := time.Now()
	r.Stop()
	stopped := time.Now()

	select {
	case <-kept.Done():
	case <-time.After(2 * ttl):
		t.Fatalf("kept context still live %s after Redis stopped", 2*ttl)
	}
	// Every renewal was sent before the server died, so the server-side key
	// could expire at stopped+ttl at the earliest; the context must be done by
	// then (small allowance for scheduling). And it must not give up at the
	// first failed renewal while the lease is still valid.
	// The allowance is for the test goroutine being scheduled late on a
	// loaded CI machine (every test package runs at once on 2 cores).
	if late := time.Since(stopped); late > ttl+250*time.Millisecond {
		t.Errorf("cancelled %s after Redis stopped, want before the lease could expire (%s)", late, ttl)
	}
	if early := time.Since(stopping); early < ttl/2 {
		t.Errorf("cancelled %s after Redis stopped, want it to keep trying until near expiry", early)
	}
	if err := context.Cause(kept); !errors.Is(err, locks.ErrLeaseLost) {
		t.Errorf("cause = %v, want ErrLeaseLost", err)
	}
	t.Logf("cause: %v", context.Cause(kept))

	// Redis comes back empty (no persistence): the lock is free, and the new
	// fence is still above the one handed out before the data loss.
	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	var next *locks.Lease
	deadline := time.Now().Add(5 * time.Second)
	for next == nil {
		next, err = l.Acquire(ctx, "node-a", ttl)
		if err != nil && time.Now().After(deadline) {
			t.Fatalf("Acquire after restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if next.Fence() <= lease.Fence() {
		t.Errorf("fence after data loss %d, want above %d", next.Fence(), lease.Fence())
	}
}
