package locks_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/node-healer/node-healer/internal/locks"
)

func TestMetricsStartAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	locks.New(nil, "t", locks.Options{Registerer: reg})
	wantMetrics(t, reg, 0, 0, 0, 0)
}

func TestAcquireRejectsBadArguments(t *testing.T) {
	l := locks.New(nil, "t") // never reaches Redis
	ctx := context.Background()
	if _, err := l.Acquire(ctx, "", time.Second); err == nil {
		t.Error("empty name: want error")
	}
	if _, err := l.Acquire(ctx, "n", 999*time.Microsecond); err == nil {
		t.Error("TTL below 1ms: want error")
	}
}

func TestOneHolderAmongRacers(t *testing.T) {
	_, rdb := newRedis(t)
	reg := prometheus.NewRegistry()
	l := locks.New(rdb, "t", locks.Options{Registerer: reg})
	ctx := context.Background()

	const racers = 100
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		mu      sync.Mutex
		winners []*locks.Lease
		errs    []error
	)
	for range racers {
		wg.Go(func() {
			<-start
			lease, err := l.Acquire(ctx, "node-a", 10*time.Second)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				winners = append(winners, lease)
			} else if !errors.Is(err, locks.ErrNotAcquired) {
				errs = append(errs, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("unexpected errors: %v", errs)
	}
	if len(winners) != 1 {
		t.Fatalf("%d holders, want exactly 1", len(winners))
	}
	token, fence, _, err := l.Holder(ctx, "node-a")
	if err != nil || token != winners[0].Token() || fence != winners[0].Fence() {
		t.Errorf("Holder = %q, %d, %v; want %q, %d", token, fence, err, winners[0].Token(), winners[0].Fence())
	}
	wantMetrics(t, reg, 1, racers-1, 0, 0)
}

func TestExpiryLetsNextHolderInWithHigherFence(t *testing.T) {
	_, rdb := newRedis(t)
	reg := prometheus.NewRegistry()
	l := locks.New(rdb, "t", locks.Options{Registerer: reg})
	ctx := context.Background()

	first, err := l.Acquire(ctx, "node-a", 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(ctx, "node-a", time.Second); !errors.Is(err, locks.ErrNotAcquired) {
		t.Fatalf("while held: err = %v, want ErrNotAcquired", err)
	}
	time.Sleep(150 * time.Millisecond)

	second, err := l.Acquire(ctx, "node-a", time.Second)
	if err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if second.Fence() <= first.Fence() {
		t.Errorf("fence %d after %d: want strictly higher", second.Fence(), first.Fence())
	}
	if err := first.Refresh(ctx, time.Second); !errors.Is(err, locks.ErrLeaseLost) {
		t.Errorf("stale Refresh: err = %v, want ErrLeaseLost", err)
	}
	if err := first.Release(ctx); !errors.Is(err, locks.ErrLeaseLost) {
		t.Errorf("stale Release: err = %v, want ErrLeaseLost", err)
	}
	if token, _, _, _ := l.Holder(ctx, "node-a"); token != second.Token() {
		t.Errorf("stale Release changed the holder to %q", token)
	}
	if err := second.Release(ctx); err != nil {
		t.Errorf("Release: %v", err)
	}
	if token, _, _, err := l.Holder(ctx, "node-a"); token != "" || err != nil {
		t.Errorf("after Release: holder %q, %v; want free", token, err)
	}
	// Fences keep growing across releases too.
	third, err := l.Acquire(ctx, "node-a", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if third.Fence() <= second.Fence() {
		t.Errorf("fence %d after %d: want strictly higher", third.Fence(), second.Fence())
	}
	wantMetrics(t, reg, 3, 1, 0, 1)
}

func TestReleaseLeavesForeignValue(t *testing.T) {
	_, rdb := newRedis(t)
	l := locks.New(rdb, "t")
	ctx := context.Background()

	lease, err := l.Acquire(ctx, "node-a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	const foreign = "0123456789abcdef0123456789abcdef:424242"
	if err := rdb.Set(ctx, l.LockKey("node-a"), foreign, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := lease.Release(ctx); !errors.Is(err, locks.ErrLeaseLost) {
		t.Errorf("Release over a foreign value: err = %v, want ErrLeaseLost", err)
	}
	if v, err := rdb.Get(ctx, l.LockKey("node-a")).Result(); err != nil || v != foreign {
		t.Errorf("lock value = %q, %v; want the foreign value untouched", v, err)
	}
	if err := lease.Refresh(ctx, time.Minute); !errors.Is(err, locks.ErrLeaseLost) {
		t.Errorf("Refresh over a foreign value: err = %v, want ErrLeaseLost", err)
	}
	token, fence, left, err := l.Holder(ctx, "node-a")
	if err != nil || token != foreign[:32] || fence != 424242 || left <= 0 || left > time.Minute {
		t.Errorf("Holder = %q, %d, %s, %v", token, fence, left, err)
	}
}

func TestHolderAndLeaseAccessors(t *testing.T) {
	_, rdb := newRedis(t)
	l := locks.New(rdb, "t")
	ctx := context.Background()

	if token, fence, left, err := l.Holder(ctx, "node-a"); token != "" || fence != 0 || left != 0 || err != nil {
		t.Fatalf("free lock: Holder = %q, %d, %s, %v", token, fence, left, err)
	}
	lease, err := l.Acquire(ctx, "node-a", 1500*time.Millisecond+700*time.Microsecond) // truncated to ms
	if err != nil {
		t.Fatal(err)
	}
	if lease.Name() != "node-a" || len(lease.Token()) != 32 || lease.Fence() <= 0 || lease.TTL() != 1500*time.Millisecond {
		t.Errorf("lease = %q %q %d %s", lease.Name(), lease.Token(), lease.Fence(), lease.TTL())
	}
	if err := lease.Refresh(ctx, 5*time.Second); err != nil || lease.TTL() != 5*time.Second {
		t.Errorf("Refresh: %v, TTL %s", err, lease.TTL())
	}
	_, _, left, err := l.Holder(ctx, "node-a")
	if err != nil || left <= 4*time.Second || left > 5*time.Second {
		t.Errorf("Holder TTL left = %s, %v; want ~5s", left, err)
	}
	// Names are independent locks.
	if _, err := l.Acquire(ctx, "node-b", time.Second); err != nil {
		t.Errorf("other name: %v", err)
	}
}

// The script half of the retry-after-success case: the same token arriving
// twice is one acquisition, with one fence.
func TestAcquireReplayedWithSameToken(t *testing.T) {
	_, rdb := newRedis(t)
	reg := prometheus.NewRegistry()
	l := locks.New(rdb, "t", locks.Options{Registerer: reg})
	ctx := context.Background()
	const token = "00112233445566778899aabbccddeeff"

	first, err := l.AcquireToken(ctx, "node-a", token, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	again, err := l.AcquireToken(ctx, "node-a", token, time.Minute)
	if err != nil {
		t.Fatalf("replay: %v, want acquired", err)
	}
	if again.Fence() != first.Fence() {
		t.Errorf("replay fence %d, want %d (no second increment)", again.Fence(), first.Fence())
	}
	if n, err := rdb.Get(ctx, l.FenceKey("node-a")).Int64(); err != nil || n != first.Fence() {
		t.Errorf("fence counter = %d, %v; want %d", n, err, first.Fence())
	}
	if _, err := l.AcquireToken(ctx, "node-a", "ffeeddccbbaa99887766554433221100", time.Minute); !errors.Is(err, locks.ErrNotAcquired) {
		t.Errorf("other token: err = %v, want ErrNotAcquired", err)
	}
	wantMetrics(t, reg, 2, 1, 0, 0)
}
