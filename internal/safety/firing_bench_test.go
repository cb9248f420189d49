package safety

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/testenv"
)

// hgetallNodes is how the breaker read the firing nodes before the
// counts (for BenchmarkFiringNodes): every alert, each evaluation.
func hgetallNodes(ctx context.Context, c redis.UniversalClient, key string) (int, error) {
	all, err := c.HGetAll(ctx, key).Result()
	if err != nil {
		return 0, err
	}
	seen := map[string]bool{}
	for _, v := range all {
		node, _, _ := strings.Cut(v, "|")
		seen[node] = true
	}
	return len(seen), nil
}

func redisCPU(b *testing.B, c *redis.Client) float64 {
	s, err := c.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	total := 0.0
	for _, l := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), ":")
		if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			f, _ := strconv.ParseFloat(v, 64)
			total += f * 1e6
		}
	}
	return total
}

// BenchmarkFiringNodes: what one breaker evaluation pays to learn which
// nodes have a firing alert, with 1,000 or 100,000 firing alerts on 300
// nodes: "counts" reads the per-node counts (Firing.Nodes, a sweep step
// included), "hgetall" reads every alert as before. redis-µs/op is
// redis-server's CPU time per evaluation — time during which it answers
// no webhook.
//
//	go test -run '^$' -bench FiringNodes -benchtime 200x ./internal/safety/
func BenchmarkFiringNodes(b *testing.B) {
	if testing.Short() {
		b.Skip("needs redis-server")
	}
	for _, alerts := range []int{1000, 100000} {
		c := testenv.NewRedis(b).Client(0)
		f := &Firing{Redis: c, Prefix: "b", MaxAge: time.Hour}
		ctx := context.Background()
		batch := map[string]string{}
		for i := range alerts {
			batch[fmt.Sprintf("fp%07d", i)] = fmt.Sprintf("node-%04d", i%300)
			if len(batch) == 1000 || i == alerts-1 {
				if err := f.Record(ctx, batch, nil); err != nil {
					b.Fatal(err)
				}
				batch = map[string]string{}
			}
		}
		for _, variant := range []string{"counts", "hgetall"} {
			b.Run(fmt.Sprintf("%d-alerts/%s", alerts, variant), func(b *testing.B) {
				u0 := redisCPU(b, c)
				for b.Loop() {
					var n int
					var err error
					if variant == "counts" {
						var ns []string
						ns, err = f.Nodes(ctx)
						n = len(ns)
					} else {
						n, err = hgetallNodes(ctx, c, f.key())
					}
					if err != nil || n != 300 {
						b.Fatalf("%d nodes, %v; want 300", n, err)
					}
				}
				b.ReportMetric((redisCPU(b, c)-u0)/float64(b.N), "redis-µs/op")
			})
		}
		c.Close()
	}
}
