package locks_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/locks"
)

// BenchmarkAcquireRelease measures one Acquire + Release round on a real
// redis-server over loopback, and reports latency percentiles of the pair.
func BenchmarkAcquireRelease(b *testing.B) {
	_, rdb := newRedis(b)
	l := locks.New(rdb, "bench")
	ctx := context.Background()
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		lease, err := l.Acquire(ctx, "node-a", time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		if err := lease.Release(ctx); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()

	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}
