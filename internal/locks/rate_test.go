package locks_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/locks"
)

// allowAll runs n concurrent Allow calls and returns the results.
func allowAll(t *testing.T, r *locks.RateLimiter, key string, limit locks.Limit, n int) []locks.Result {
	t.Helper()
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		res   = make([]locks.Result, n)
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			res[i], errs[i] = r.Allow(context.Background(), key, limit)
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return res
}

func countAllowed(res []locks.Result) int {
	n := 0
	for _, r := range res {
		if r.Allowed {
			n++
		}
	}
	return n
}

func TestRateConcurrentAllowAdmitsBurstThenOnePerPeriod(t *testing.T) {
	_, rdb := newRedis(t)
	r := locks.NewRateLimiter(rdb, "t")
	ctx := context.Background()

	for _, burst := range []int{1, 3} {
		key := "reboot-" + strconv.Itoa(burst)
		limit := locks.Limit{Rate: 1, Period: 600 * time.Millisecond, Burst: burst}
		res := allowAll(t, r, key, limit, 50)
		if got := countAllowed(res); got != burst {
			t.Fatalf("burst %d: %d of 50 admitted", burst, got)
		}
		var maxRetry time.Duration
		for _, x := range res {
			if x.Allowed {
				continue
			}
			if x.Remaining != 0 || x.RetryAfter <= 0 || x.RetryAfter > limit.Period {
				t.Errorf("burst %d: refused result %+v: want Remaining 0, 0 < RetryAfter <= period", burst, x)
			}
			if x.ResetAfter < time.Duration(burst-1)*limit.Period || x.ResetAfter > time.Duration(burst)*limit.Period {
				t.Errorf("burst %d: ResetAfter %s outside [%d, %d] periods", burst, x.ResetAfter, burst-1, burst)
			}
			maxRetry = max(maxRetry, x.RetryAfter)
		}

		// Just before RetryAfter: still refused. After it: exactly one more.
		if got, _ := r.Allow(ctx, key, limit); got.Allowed {
			t.Fatalf("burst %d: admitted before the period passed", burst)
		}
		time.Sleep(maxRetry + 20*time.Millisecond)
		res = allowAll(t, r, key, limit, 20)
		if got := countAllowed(res); got != 1 {
			t.Fatalf("burst %d: %d admitted one period later, want 1", burst, got)
		}
	}
}

func TestRateNeverFasterThanRate(t *testing.T) {
	_, rdb := newRedis(t)
	r := locks.NewRateLimiter(rdb, "t")
	limit := locks.Limit{Rate: 20, Period: time.Second, Burst: 2} // one per 50ms
	var admitted atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for time.Since(start) < 600*time.Millisecond {
				res, err := r.Allow(context.Background(), "k", limit)
				if err != nil {
					t.Error(err)
					return
				}
				if res.Allowed {
					admitted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	// Burst, plus one per interval elapsed (and one for the edge).
	ceiling := int64(limit.Burst) + int64(elapsed/(50*time.Millisecond)) + 1
	if got := admitted.Load(); got > ceiling || got < 8 {
		t.Errorf("admitted %d in %s, want between 8 and %d", got, elapsed, ceiling)
	}
}

func TestRatePeekDoesNotConsume(t *testing.T) {
	_, rdb := newRedis(t)
	r := locks.NewRateLimiter(rdb, "t")
	ctx := context.Background()
	limit := locks.Limit{Rate: 1, Period: time.Minute, Burst: 2}

	for range 5 {
		p, err := r.Peek(ctx, "k", limit)
		if err != nil {
			t.Fatal(err)
		}
		if want := (locks.Result{Allowed: true, Remaining: 2}); p != want {
			t.Fatalf("Peek on a fresh key = %+v, want %+v", p, want)
		}
	}
	a, err := r.Allow(ctx, "k", limit)
	if err != nil || !a.Allowed || a.Remaining != 1 || a.RetryAfter != 0 {
		t.Fatalf("first Allow = %+v, %v; want allowed, 1 remaining", a, err)
	}
	p, _ := r.Peek(ctx, "k", limit)
	if !p.Allowed || p.Remaining != 1 || p.ResetAfter <= 59*time.Second || p.ResetAfter > time.Minute {
		t.Errorf("Peek after one Allow = %+v; want allowed, 1 remaining, reset in ~1m", p)
	}
	if a, _ = r.Allow(ctx, "k", limit); !a.Allowed || a.Remaining != 0 {
		t.Fatalf("second Allow = %+v; want allowed, 0 remaining", a)
	}
	for range 3 {
		p, _ = r.Peek(ctx, "k", limit)
		if p.Allowed || p.Remaining != 0 || p.RetryAfter <= 59*time.Second || p.RetryAfter > time.Minute {
			t.Fatalf("Peek with budget spent = %+v; want refused, retry in ~1m", p)
		}
	}
	// Peek predicted the refusal; Allow agrees, and the refusal consumed nothing.
	a, _ = r.Allow(ctx, "k", limit)
	if a.Allowed || a.RetryAfter > p.RetryAfter || a.ResetAfter > p.ResetAfter {
		t.Errorf("third Allow = %+v after Peek %+v", a, p)
	}
}

func TestRateKeysAreIndependent(t *testing.T) {
	_, rdb := newRedis(t)
	r := locks.NewRateLimiter(rdb, "t")
	other := locks.NewRateLimiter(rdb, "other")
	ctx := context.Background()
	limit := locks.Limit{Rate: 1, Period: time.Hour, Burst: 1}
	for _, c := range []struct {
		r   *locks.RateLimiter
		key string
	}{{r, "a"}, {r, "b"}, {other, "a"}} {
		if res, err := c.r.Allow(ctx, c.key, limit); err != nil || !res.Allowed {
			t.Errorf("first Allow(%q) = %+v, %v; want allowed", c.key, res, err)
		}
		if res, err := c.r.Allow(ctx, c.key, limit); err != nil || res.Allowed {
			t.Errorf("second Allow(%q) = %+v, %v; want limited", c.key, res, err)
		}
	}
}

func TestRateSharedAcrossReplicas(t *testing.T) {
	srv, rdb := newRedis(t)
	rdb2 := srv.Client(0)
	t.Cleanup(func() { _ = rdb2.Close() })
	a := locks.NewRateLimiter(rdb, "t")
	b := locks.NewRateLimiter(rdb2, "t")
	ctx := context.Background()
	limit := locks.Limit{Rate: 1, Period: 300 * time.Millisecond, Burst: 1}

	if res, _ := a.Allow(ctx, "reboot", limit); !res.Allowed {
		t.Fatalf("replica a: %+v, want allowed", res)
	}
	res, err := b.Allow(ctx, "reboot", limit)
	if err != nil || res.Allowed || res.RetryAfter <= 0 {
		t.Fatalf("replica b right after a: %+v, %v; want limited with RetryAfter", res, err)
	}
	if p, _ := b.Peek(ctx, "reboot", limit); p.Allowed {
		t.Errorf("replica b Peek: %+v, want not allowed", p)
	}
	time.Sleep(res.RetryAfter + 20*time.Millisecond)
	// Both race after the period: one of them wins.
	var wins atomic.Int64
	var wg sync.WaitGroup
	for _, r := range []*locks.RateLimiter{a, b, a, b} {
		wg.Go(func() {
			if res, err := r.Allow(ctx, "reboot", limit); err == nil && res.Allowed {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Errorf("%d replicas admitted after the period, want 1", wins.Load())
	}
}

func TestRateRejectsBadArguments(t *testing.T) {
	r := locks.NewRateLimiter(nil, "t") // never reaches Redis
	ctx := context.Background()
	good := locks.Limit{Rate: 1, Period: time.Second, Burst: 1}
	if _, err := r.Allow(ctx, "", good); err == nil {
		t.Error("empty key: want error")
	}
	for _, l := range []locks.Limit{
		{Rate: 0, Period: time.Second, Burst: 1},
		{Rate: 1, Period: 0, Burst: 1},
		{Rate: 1, Period: time.Second, Burst: 0},
		{Rate: 1000, Period: time.Microsecond, Burst: 1},
	} {
		if _, err := r.Allow(ctx, "k", l); err == nil {
			t.Errorf("Allow with %+v: want error", l)
		}
		if _, err := r.Peek(ctx, "k", l); err == nil {
			t.Errorf("Peek with %+v: want error", l)
		}
	}
}

// TestSafetyMetricsShareRegistry builds a Locker, two RateLimiters and two
// Slots on one registry: nothing collides, every series starts at zero, and
// limiters sharing the registry share the counters.
func TestSafetyMetricsShareRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	// Every call fails before it reaches a server: the context is cancelled.
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	t.Cleanup(func() { _ = down.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	locks.New(nil, "t", locks.Options{Registerer: reg})
	r1 := locks.NewRateLimiter(down, "t", locks.Options{Registerer: reg})
	r2 := locks.NewRateLimiter(down, "t", locks.Options{Registerer: reg})
	s1 := locks.NewSlots(down, "t", locks.Options{Registerer: reg})
	locks.NewSlots(down, "t", locks.Options{Registerer: reg})
	wantSafetyMetrics(t, reg, 0, 0)
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 11 {
		t.Errorf("registry has %d series (%v), want 5 lock + 3 rate + 3 slots", n, err)
	}

	limit := locks.Limit{Rate: 1, Period: time.Second, Burst: 1}
	if _, err := r1.Allow(ctx, "k", limit); err == nil {
		t.Error("Allow that cannot reach Redis: want error")
	}
	if _, err := r2.Allow(ctx, "", limit); err == nil {
		t.Error("Allow with empty key: want error")
	}
	if _, _, err := s1.Acquire(ctx, "p", "h", 1, time.Second); err == nil {
		t.Error("Acquire that cannot reach Redis: want error")
	}
	wantSafetyMetrics(t, reg, 2, 1)
}

func wantSafetyMetrics(t *testing.T, reg *prometheus.Registry, rateErrors, slotErrors int) {
	t.Helper()
	want := `
# HELP node_healer_rate_limit_total Rate limiter decisions by result (allowed, limited, error).
# TYPE node_healer_rate_limit_total counter
node_healer_rate_limit_total{result="allowed"} 0
node_healer_rate_limit_total{result="error"} ` + strconv.Itoa(rateErrors) + `
node_healer_rate_limit_total{result="limited"} 0
# HELP node_healer_slots_total Cluster-wide slot acquisitions by result (acquired, full, error).
# TYPE node_healer_slots_total counter
node_healer_slots_total{result="acquired"} 0
node_healer_slots_total{result="error"} ` + strconv.Itoa(slotErrors) + `
node_healer_slots_total{result="full"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"node_healer_rate_limit_total", "node_healer_slots_total"); err != nil {
		t.Error(err)
	}
}

func TestRateMetricsCountDecisions(t *testing.T) {
	_, rdb := newRedis(t)
	reg := prometheus.NewRegistry()
	r := locks.NewRateLimiter(rdb, "t", locks.Options{Registerer: reg})
	limit := locks.Limit{Rate: 1, Period: time.Hour, Burst: 2}
	allowAll(t, r, "k", limit, 5)
	if _, err := r.Peek(context.Background(), "k", limit); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP node_healer_rate_limit_total Rate limiter decisions by result (allowed, limited, error).
# TYPE node_healer_rate_limit_total counter
node_healer_rate_limit_total{result="allowed"} 2
node_healer_rate_limit_total{result="error"} 0
node_healer_rate_limit_total{result="limited"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

// BenchmarkRateAllow measures one Allow on a real redis-server over loopback.
func BenchmarkRateAllow(b *testing.B) {
	_, rdb := newRedis(b)
	r := locks.NewRateLimiter(rdb, "bench")
	ctx := context.Background()
	limit := locks.Limit{Rate: 1, Period: time.Minute, Burst: 1}
	for b.Loop() {
		if _, err := r.Allow(ctx, "reboot", limit); err != nil {
			b.Fatal(err)
		}
	}
}
