package locks_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/locks"
	"github.com/node-healer/node-healer/internal/testenv"
)

// BenchmarkAcquireRelease measures one Acquire + Release round on a real
// redis-server over loopback, and reports latency percentiles of the pair:
// "single" on one Redis; "cluster" on a three-master Redis Cluster (the
// node's keys share a hash tag: one master, one round trip); "wait-1-replica" with MinReplicas 1 against a
// primary with one local replica (WAIT pipelined with the acquire).
//
//	go test -run '^$' -bench AcquireRelease -benchtime 2000x ./internal/locks/
func BenchmarkAcquireRelease(b *testing.B) {
	b.Run("single", func(b *testing.B) {
		_, rdb := newRedis(b)
		benchAcquireRelease(b, locks.New(rdb, "bench"))
	})
	b.Run("cluster", func(b *testing.B) {
		if testing.Short() {
			b.Skip("needs redis-server")
		}
		_, rdb := testenv.NewRedisCluster(b)
		benchAcquireRelease(b, locks.New(rdb, "bench"))
	})
	b.Run("wait-1-replica", func(b *testing.B) {
		primary := newReplicated(b)
		benchAcquireRelease(b, locks.New(primary, "bench", locks.Options{MinReplicas: 1}))
	})
}

func benchAcquireRelease(b *testing.B, l *locks.Locker) {
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
