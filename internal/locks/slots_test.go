package locks_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/node-healer/node-healer/internal/locks"
)

func TestSlotsCapAmongRacers(t *testing.T) {
	srv, rdb := newRedis(t)
	rdb2 := srv.Client(0) // a second replica
	t.Cleanup(func() { _ = rdb2.Close() })
	reg := prometheus.NewRegistry()
	replicas := []*locks.Slots{
		locks.NewSlots(rdb, "t", locks.Options{Registerer: reg}),
		locks.NewSlots(rdb2, "t", locks.Options{Registerer: reg}),
	}
	ctx := context.Background()

	const racers = 100
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		mu      sync.Mutex
		winners []string
	)
	for i := range racers {
		wg.Go(func() {
			<-start
			holder := "run-" + strconv.Itoa(i)
			ok, held, err := replicas[i%2].Acquire(ctx, "cluster", holder, 2, 10*time.Second)
			if err != nil {
				t.Error(err)
				return
			}
			if held < 1 || held > 2 {
				t.Errorf("%s: held = %d, want 1 or 2", holder, held)
			}
			if !ok && held != 2 {
				t.Errorf("%s: refused with held = %d, want 2", holder, held)
			}
			if ok {
				mu.Lock()
				winners = append(winners, holder)
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	if len(winners) != 2 {
		t.Fatalf("%d holders, want exactly 2: %v", len(winners), winners)
	}
	got, err := replicas[0].Holders(ctx, "cluster")
	slices.Sort(got)
	slices.Sort(winners)
	if err != nil || !slices.Equal(got, winners) {
		t.Errorf("Holders = %v, %v; want %v", got, err, winners)
	}
	want := `
# HELP node_healer_slots_total Cluster-wide slot acquisitions by result (acquired, full, error).
# TYPE node_healer_slots_total counter
node_healer_slots_total{result="acquired"} 2
node_healer_slots_total{result="error"} 0
node_healer_slots_total{result="full"} 98
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestSlotsReleaseFrees(t *testing.T) {
	_, rdb := newRedis(t)
	s := locks.NewSlots(rdb, "t")
	ctx := context.Background()
	mustAcquire(t, s, "p", "a", 2, time.Minute, true, 1)
	mustAcquire(t, s, "p", "b", 2, time.Minute, true, 2)
	mustAcquire(t, s, "p", "c", 2, time.Minute, false, 2)
	if err := s.Release(ctx, "p", "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(ctx, "p", "a"); !errors.Is(err, locks.ErrSlotLost) {
		t.Errorf("second Release = %v, want ErrSlotLost", err)
	}
	if err := s.Release(ctx, "p", "never"); !errors.Is(err, locks.ErrSlotLost) {
		t.Errorf("Release of a non-holder = %v, want ErrSlotLost", err)
	}
	mustAcquire(t, s, "p", "c", 2, time.Minute, true, 2)
	wantHolders(t, s, "p", "b", "c")
}

func TestSlotsExpiryFreesCrashedHolder(t *testing.T) {
	_, rdb := newRedis(t)
	s := locks.NewSlots(rdb, "t")
	ctx := context.Background()
	mustAcquire(t, s, "p", "crashed", 1, 300*time.Millisecond, true, 1)
	mustAcquire(t, s, "p", "next", 1, time.Minute, false, 1)
	time.Sleep(350 * time.Millisecond)
	wantHolders(t, s, "p") // expired holders are not listed, even before cleanup
	if err := s.Refresh(ctx, "p", "crashed", time.Minute); !errors.Is(err, locks.ErrSlotLost) {
		t.Errorf("Refresh after expiry = %v, want ErrSlotLost", err)
	}
	mustAcquire(t, s, "p", "next", 1, time.Minute, true, 1)
	if err := s.Release(ctx, "p", "crashed"); !errors.Is(err, locks.ErrSlotLost) {
		t.Errorf("Release after expiry = %v, want ErrSlotLost", err)
	}
	wantHolders(t, s, "p", "next")
}

func TestSlotsReentrantAndRefresh(t *testing.T) {
	_, rdb := newRedis(t)
	s := locks.NewSlots(rdb, "t")
	ctx := context.Background()
	mustAcquire(t, s, "p", "a", 1, 200*time.Millisecond, true, 1)
	mustAcquire(t, s, "p", "a", 1, 200*time.Millisecond, true, 1) // re-entrant, still 1
	if err := s.Refresh(ctx, "p", "a", time.Minute); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // past the first TTL
	mustAcquire(t, s, "p", "b", 1, time.Minute, false, 1)
	wantHolders(t, s, "p", "a")

	// Re-entry holds even when the limit has since been lowered.
	mustAcquire(t, s, "q", "x", 2, time.Minute, true, 1)
	mustAcquire(t, s, "q", "y", 2, time.Minute, true, 2)
	mustAcquire(t, s, "q", "x", 1, time.Minute, true, 2)
	mustAcquire(t, s, "q", "z", 1, time.Minute, false, 2)

	// A re-entrant Acquire with a short TTL shortens the slot too.
	mustAcquire(t, s, "p", "a", 1, 100*time.Millisecond, true, 1)
	time.Sleep(150 * time.Millisecond)
	mustAcquire(t, s, "p", "b", 1, time.Minute, true, 1)
}

func TestSlotsPoolsIndependentAndKeyExpires(t *testing.T) {
	_, rdb := newRedis(t)
	s := locks.NewSlots(rdb, "t")
	ctx := context.Background()
	mustAcquire(t, s, "workers", "a", 1, 150*time.Millisecond, true, 1)
	mustAcquire(t, s, "control-plane", "a", 1, 150*time.Millisecond, true, 1)
	mustAcquire(t, s, "control-plane", "b", 1, time.Minute, false, 1)
	// The pool key carries the latest holder's expiry, so an abandoned pool
	// leaves nothing behind.
	pttl, err := rdb.PTTL(ctx, "t:slots:{workers}").Result()
	if err != nil || pttl <= 0 || pttl > 150*time.Millisecond {
		t.Errorf("pool key PTTL = %s, %v; want (0, 150ms]", pttl, err)
	}
	time.Sleep(200 * time.Millisecond)
	if n, _ := rdb.Exists(ctx, "t:slots:{workers}").Result(); n != 0 {
		t.Error("abandoned pool key still exists")
	}
}

func TestSlotsRejectBadArguments(t *testing.T) {
	s := locks.NewSlots(nil, "t") // never reaches Redis
	ctx := context.Background()
	for _, c := range []struct {
		pool, holder string
		limit        int
		ttl          time.Duration
	}{
		{"", "h", 1, time.Second},
		{"p", "", 1, time.Second},
		{"p", "h", 0, time.Second},
		{"p", "h", 1, 999 * time.Microsecond},
	} {
		if _, _, err := s.Acquire(ctx, c.pool, c.holder, c.limit, c.ttl); err == nil {
			t.Errorf("Acquire(%q, %q, %d, %s): want error", c.pool, c.holder, c.limit, c.ttl)
		}
	}
	if err := s.Refresh(ctx, "p", "h", 0); err == nil {
		t.Error("Refresh with zero TTL: want error")
	}
}

func mustAcquire(t *testing.T, s *locks.Slots, pool, holder string, limit int, ttl time.Duration, wantOK bool, wantHeld int) {
	t.Helper()
	ok, held, err := s.Acquire(context.Background(), pool, holder, limit, ttl)
	if err != nil || ok != wantOK || held != wantHeld {
		t.Fatalf("Acquire(%q, %q, limit %d) = %v, %d, %v; want %v, %d", pool, holder, limit, ok, held, err, wantOK, wantHeld)
	}
}

func wantHolders(t *testing.T, s *locks.Slots, pool string, want ...string) {
	t.Helper()
	got, err := s.Holders(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Errorf("Holders(%q) = %v, want %v", pool, got, want)
	}
}

// BenchmarkSlotsAcquireRelease measures one Acquire + Release round on a real
// redis-server over loopback.
func BenchmarkSlotsAcquireRelease(b *testing.B) {
	_, rdb := newRedis(b)
	s := locks.NewSlots(rdb, "bench")
	ctx := context.Background()
	for b.Loop() {
		ok, _, err := s.Acquire(ctx, "cluster", "run", 2, time.Minute)
		if err != nil || !ok {
			b.Fatal(ok, err)
		}
		if err := s.Release(ctx, "cluster", "run"); err != nil {
			b.Fatal(err)
		}
	}
}
