package intake

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/queue"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/testenv"
)

// serverUsec is redis-server's CPU time (INFO cpu: used_cpu_user +
// used_cpu_sys), in µs: commands, scripts and network I/O.
func serverUsec(b *testing.B, c *redis.Client) float64 {
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

// BenchmarkRecord100: one 100-alert payload (every alert new, on 50
// nodes) through Record on a real redis-server: client wall time per
// payload, and redis-server's CPU time for it (redis-µs/op).
//
// "before" is the previous intake for comparison: the firing alerts as
// one HSET in a pipeline of its own, then the enqueue script. "-resent":
// 50 payloads sent over and over, as Alertmanager re-sends its groups
// (every alert a duplicate after the first 50 payloads); "-recent": with
// Recent, which answers those re-sends after one GET (recent.go).
//
//	go test -run '^$' -bench Record100 -benchtime 1000x ./internal/intake/
func BenchmarkRecord100(b *testing.B) {
	if testing.Short() {
		b.Skip("needs redis-server")
	}
	for _, variant := range []string{"after", "before", "after-resent", "before-resent", "after-resent-recent"} {
		b.Run(variant, func(b *testing.B) {
			c := testenv.NewRedis(b).Client(0)
			b.Cleanup(func() { c.Close() })
			fx := newFixture(c, queue.Options{Prefix: "b"})
			ctx := context.Background()
			if strings.HasSuffix(variant, "-recent") {
				fx.in.Recent = NewRecent(c, "b")
			}
			type p struct {
				reqs   []runbooks.Request
				firing map[string]string
			}
			ps := make([]p, b.N)
			for i := range ps {
				ps[i].firing = map[string]string{}
				k := i
				if strings.Contains(variant, "-resent") {
					k = i % 50 // a population of 50 payloads, re-sent
				}
				for j := range 100 {
					fp := fmt.Sprintf("%08x%04x", k, j)
					node := fmt.Sprintf("node-%04d", j%50)
					ps[i].reqs = append(ps[i].reqs, runbooks.Request{RunID: runbooks.RunID(fp, at), Fingerprint: fp, StartsAt: at, Node: node,
						Route: "r", Runbook: "cordon", Labels: map[string]string{"alertname": "NodeKernelDeadlock", "node": node}, Enqueued: time.Now()})
					ps[i].firing[fp] = node
				}
			}
			u0 := serverUsec(b, c)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var err error
				if strings.HasPrefix(variant, "after") {
					_, err = fx.in.Record(ctx, ps[i].reqs, ps[i].firing, nil)
				} else {
					vals := make([]any, 0, 200)
					now := strconv.FormatInt(time.Now().Unix(), 10)
					for fp, n := range ps[i].firing {
						vals = append(vals, fp, n+"|"+now)
					}
					if err = c.HSet(ctx, "b:firing", vals...).Err(); err == nil {
						_, err = fx.q.Enqueue(ctx, ps[i].reqs)
					}
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric((serverUsec(b, c)-u0)/float64(b.N), "redis-µs/op")
		})
	}
}
