package handlers

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/config"
	"github.com/node-healer/node-healer/internal/intake"
	"github.com/node-healer/node-healer/internal/metrics"
	"github.com/node-healer/node-healer/internal/queue"
	"github.com/node-healer/node-healer/internal/redisconn"
	"github.com/node-healer/node-healer/internal/safety"
	"github.com/node-healer/node-healer/internal/testenv"
)

// roundTrips counts a client's round trips to Redis: one per command
// sent alone, one per pipeline.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { r.n.Add(1); return next(ctx, cmd) }
}
func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { r.n.Add(1); return next(ctx, cmds) }
}

// benchServer is the webhook on a real redis-server queue. Node lookups
// use a map, as the production informer cache does.
func benchServer(b *testing.B) (http.Handler, *roundTrips) {
	c := testenv.NewRedisClient(b)
	rt := &roundTrips{}
	c.AddHook(rt)
	return benchServerOn(b, c, queue.Options{Prefix: "bench"}), rt
}

// benchServerOn is the webhook on queue options o over client c (a single
// Redis, a Cluster or a Sentinel-managed primary).
func benchServerOn(b *testing.B, c redis.UniversalClient, o queue.Options) http.Handler {
	return benchServerWith(b, c, o, nil)
}

// benchServerWith is benchServerOn with the intake's memory of re-sends.
func benchServerWith(b *testing.B, c redis.UniversalClient, o queue.Options, recent *intake.Recent) http.Handler {
	cfg, err := config.Parse([]byte(testConfig), ".", nil)
	if err != nil {
		b.Fatal(err)
	}
	cfg.Webhook.MaxBodyBytes = 1 << 20
	nodes := fakeNodes{}
	for i := range 100 {
		nodes[fmt.Sprintf("n%d", i)] = true
	}
	reg := prometheus.NewRegistry()
	return New(Options{Router: cfg, Intake: &intake.Intake{Queue: queue.New(c, o), Firing: &safety.Firing{Redis: c, Prefix: o.Prefix}, Recent: recent}, Nodes: nodes,
		Auth: cfg.Webhook.Auth, MaxBody: cfg.Webhook.MaxBodyBytes, Metrics: metrics.New(reg, nil), Gatherer: reg,
		Log: slog.New(slog.DiscardHandler)})
}

func benchPayload(seq, alerts int) string {
	as := make([]string, alerts)
	for i := range as {
		as[i] = alert("firing", fmt.Sprintf("%08x%08x", seq, i), fmt.Sprintf(`"alertname":"NodeKernelDeadlock","node":"n%d","severity":"critical","instance":"10.0.0.%d:9100"`, i%100, i%250))
	}
	return payload(as...)
}

// resentPayload is bench/scale's load payload: 50 firing alerts and 50
// resolved ones, alternating.
func resentPayload() string {
	as := make([]string, 100)
	for i := range as {
		status, fp := "firing", fmt.Sprintf("f%08x", i)
		if i%2 == 1 {
			status, fp = "resolved", fmt.Sprintf("r%08x", i)
		}
		as[i] = alert(status, fp, fmt.Sprintf(`"alertname":"NodeKernelDeadlock","node":"n%d","severity":"critical","instance":"10.0.0.%d:9100"`, i%100, i%250))
	}
	return payload(as...)
}

func benchWebhook(b *testing.B, alerts int) {
	if testing.Short() {
		b.Skip("needs redis-server")
	}
	h, rt := benchServer(b)
	benchWebhookOn(b, h, alerts)
	b.ReportMetric(float64(rt.n.Load())/float64(b.N), "redis-rt/op")
}

func benchWebhookOn(b *testing.B, h http.Handler, alerts int) {
	bodies := make([]string, b.N)
	for i := range bodies {
		bodies[i] = benchPayload(i, alerts) // distinct alerts: every one is enqueued
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		req := httptest.NewRequest(http.MethodPost, "/webhook", strings.NewReader(bodies[i]))
		req.Header.Set("Authorization", "Bearer test-token")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		lat = append(lat, time.Since(t0))
		if rec.Code != 200 {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkWebhook1Alert: one alert per payload, each new (enqueued).
func BenchmarkWebhook1Alert(b *testing.B) { benchWebhook(b, 1) }

// BenchmarkWebhook100Alerts: Alertmanager's max_alerts=100 payload.
func BenchmarkWebhook100Alerts(b *testing.B) { benchWebhook(b, 100) }

// BenchmarkWebhook100AlertsResent: the payload of bench/scale's "webhook
// under load" — 50 firing alerts re-sent (every run a duplicate) and 50
// resolved ones, the same payload over and over — through the handler
// with the intake's memory of re-sends (intake.Recent), as the receiver
// serves it: decoding, routing, the memory, one GET, the reply.
//
//	go test -run '^$' -bench Webhook100AlertsResent -cpuprofile /tmp/cpu.out ./internal/handlers/
func BenchmarkWebhook100AlertsResent(b *testing.B) {
	if testing.Short() {
		b.Skip("needs redis-server")
	}
	c := testenv.NewRedisClient(b)
	rt := &roundTrips{}
	c.AddHook(rt)
	h := benchServerWith(b, c, queue.Options{Prefix: "bench"}, intake.NewRecent(c, "bench"))
	body := resentPayload()
	post := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/webhook", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer test-token")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		return rec
	}
	post() // the first time: persisted; every later one a re-send
	rt.n.Store(0)
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		post()
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(rt.n.Load())/float64(b.N), "redis-rt/op")
}

// BenchmarkWebhook100AlertsTopology: the 100-alert payload on each Redis
// topology node-healer supports, all redis-server processes on loopback:
// "single" (as BenchmarkWebhook100Alerts), "cluster" (three masters; the
// queue's keys share one hash tag, so one master takes them all),
// "sentinel-wait-1" (through Sentinel to a primary with one replica and
// redis.min_replicas_acked 1: every 200 waits for the replica).
//
//	go test -run '^$' -bench Webhook100AlertsTopology -benchtime 500x ./internal/handlers/
func BenchmarkWebhook100AlertsTopology(b *testing.B) {
	if testing.Short() {
		b.Skip("needs redis-server")
	}
	redisconn.SetLogger(slog.New(slog.DiscardHandler)) // Sentinel chatter
	b.Run("single", func(b *testing.B) { benchWebhook(b, 100) })
	b.Run("cluster", func(b *testing.B) {
		_, c := testenv.NewRedisCluster(b)
		benchWebhookOn(b, benchServerOn(b, c, queue.Options{Prefix: "bench"}), 100)
	})
	b.Run("sentinel-wait-1", func(b *testing.B) {
		s := testenv.NewRedisSentinel(b, testenv.SentinelOptions{})
		c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: s.MasterName, SentinelAddrs: s.Sentinels})
		b.Cleanup(func() { c.Close() })
		benchWebhookOn(b, benchServerOn(b, c, queue.Options{Prefix: "bench", MinReplicas: 1}), 100)
	})
}

// BenchmarkFailoverTo200 measures how long the webhook answers 503 when
// the Redis primary dies: a primary with two replicas and three Sentinels
// (down-after-milliseconds 1000), the webhook through a Sentinel client;
// the primary is SIGKILLed and the same 1-alert payload is posted every
// 20 ms until a 200. One failover per iteration (the set is rebuilt
// outside the timer); reports the median and the worst.
//
//	go test -run '^$' -bench FailoverTo200 -benchtime 5x ./internal/handlers/
func BenchmarkFailoverTo200(b *testing.B) {
	if testing.Short() {
		b.Skip("needs redis-server")
	}
	redisconn.SetLogger(slog.New(slog.DiscardHandler))
	for _, acked := range []int{0, 1} {
		b.Run(fmt.Sprintf("min-replicas-acked-%d", acked), func(b *testing.B) {
			var took []time.Duration
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				s, err := testenv.StartRedisSentinel(context.Background(), b.TempDir(), testenv.SentinelOptions{Replicas: 2})
				if err != nil {
					b.Fatal(err)
				}
				c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: s.MasterName, SentinelAddrs: s.Sentinels,
					DialTimeout: redisconn.DialTimeout, ReadTimeout: redisconn.ReadTimeout, WriteTimeout: redisconn.WriteTimeout, MaxRetries: redisconn.MaxRetries})
				h := benchServerOn(b, c, queue.Options{Prefix: "bench", MinReplicas: acked})
				post := func(seq int) int {
					req := httptest.NewRequest(http.MethodPost, "/webhook", strings.NewReader(benchPayload(seq, 1)))
					req.Header.Set("Authorization", "Bearer test-token")
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					return rec.Code
				}
				if code := post(0); code != 200 {
					b.Fatalf("before the failover: %d", code)
				}
				b.StartTimer()
				start := time.Now()
				if _, err := s.KillPrimary(context.Background()); err != nil {
					b.Fatal(err)
				}
				for seq := 1; post(seq) != 200; seq++ {
					if time.Since(start) > time.Minute {
						b.Fatalf("no 200 within a minute of the kill\n%s", s.LogTails(10))
					}
					time.Sleep(20 * time.Millisecond)
				}
				took = append(took, time.Since(start))
				b.StopTimer()
				c.Close()
				s.Stop()
				b.StartTimer()
			}
			slices.Sort(took)
			b.ReportMetric(took[len(took)/2].Seconds(), "p50-s")
			b.ReportMetric(took[len(took)-1].Seconds(), "max-s")
		})
	}
}
