package queue

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/testenv"
)

func newQueue(t *testing.T, claimAfter time.Duration) (*Queue, *testenv.Redis) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs redis-server (integration)")
	}
	r := testenv.NewRedis(t)
	c := r.ClientFor(t, 0)
	q := New(c, Options{Prefix: "t", ClaimAfter: claimAfter})
	if err := q.EnsureGroup(context.Background()); err != nil {
		t.Fatal(err)
	}
	return q, r
}

func job(fp string) Job {
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	return Job{RunID: runbooks.RunID(fp, at), Fingerprint: fp, StartsAt: at, Node: "n1", Runbook: "cordon"}
}

func TestEnqueueIsIdempotent(t *testing.T) {
	q, _ := newQueue(t, time.Second)
	ctx := context.Background()
	added, err := q.Enqueue(ctx, []Job{job("a"), job("b"), job("a")})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(added) != "[true true false]" {
		t.Fatalf("added %v", added)
	}
	// 20 concurrent deliveries of the same alert: one entry.
	var wg sync.WaitGroup
	var mu sync.Mutex
	n := 0
	for range 20 {
		wg.Go(func() {
			a, err := q.Enqueue(ctx, []Job{job("c")})
			if err != nil {
				t.Error(err)
				return
			}
			if a[0] {
				mu.Lock()
				n++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if n != 1 {
		t.Fatalf("%d of 20 concurrent deliveries were added, want 1", n)
	}
	ds, _, err := q.Read(ctx, "w", 10, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 3 {
		t.Fatalf("read %d entries, want 3 (a, b, c)", len(ds))
	}
}

func TestClaimAfterIdleAndTouch(t *testing.T) {
	// Generous margins: the test machine may be loaded (sleeps overshoot).
	q, _ := newQueue(t, time.Second)
	ctx := context.Background()
	if _, err := q.Enqueue(ctx, []Job{job("a")}); err != nil {
		t.Fatal(err)
	}
	ds, _, _ := q.Read(ctx, "dead", 1, 10*time.Millisecond)
	if len(ds) != 1 {
		t.Fatalf("first read: %d", len(ds))
	}
	// Not idle long enough: nobody else gets it.
	if got, _, _ := q.Read(ctx, "other", 1, 10*time.Millisecond); len(got) != 0 {
		t.Fatalf("claimed too early")
	}
	// The owner touches it: still not claimable after the idle time.
	time.Sleep(600 * time.Millisecond)
	if err := q.Touch(ctx, "dead", ds[0].ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	if got, _, _ := q.Read(ctx, "other", 1, 10*time.Millisecond); len(got) != 0 {
		t.Fatalf("claimed although touched")
	}
	time.Sleep(time.Second)
	got, _, err := q.Read(ctx, "other", 1, 10*time.Millisecond)
	if err != nil || len(got) != 1 || !got[0].Claimed || got[0].Job.RunID != ds[0].Job.RunID {
		t.Fatalf("claim after idle: %+v %v", got, err)
	}
	if err := q.Ack(ctx, got[0].ID); err != nil {
		t.Fatal(err)
	}
	lag, pending, err := q.Backlog(ctx)
	if err != nil || lag != 0 || pending != 0 {
		t.Fatalf("backlog after ack: lag %d pending %d %v", lag, pending, err)
	}
}

func TestMalformedEntryIsDropped(t *testing.T) {
	q, r := newQueue(t, time.Second)
	ctx := context.Background()
	c := r.Client(0)
	defer c.Close()
	if err := c.XAdd(ctx, &redis.XAddArgs{Stream: q.Stream(), Values: []string{"job", "{not json"}}).Err(); err != nil {
		t.Fatal(err)
	}
	ds, bad, err := q.Read(ctx, "w", 10, 10*time.Millisecond)
	if err != nil || len(ds) != 0 || len(bad) != 1 {
		t.Fatalf("ds %v bad %v err %v", ds, bad, err)
	}
}

func TestRedisDown(t *testing.T) {
	q, r := newQueue(t, time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r.Stop()
	if _, err := q.Enqueue(ctx, []Job{job("a")}); err == nil {
		t.Fatal("enqueue succeeded with redis stopped")
	}
	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	// Redis restarted empty (no persistence in tests): the script and the
	// group are created again on demand.
	added, err := q.Enqueue(ctx, []Job{job("a")})
	if err != nil || !added[0] {
		t.Fatalf("after restart: %v %v", added, err)
	}
	ds, _, err := q.Read(ctx, "w", 1, 10*time.Millisecond)
	if err != nil || len(ds) != 1 {
		t.Fatalf("read after restart: %v %v", ds, err)
	}
}

// TestJobEncodingRoundTrip: a job with every field set (and one with
// none of the optional ones) comes off the stream as it went in — the
// intake encodes with go-json-experiment/json, workers decode with
// encoding/json.
func TestJobEncodingRoundTrip(t *testing.T) {
	q, _ := newQueue(t, time.Second)
	ctx := context.Background()
	full := job("full")
	full.StartsAt = time.Date(2026, 12, 6, 12, 0, 0, 123456789, time.FixedZone("CET", 3600))
	full.Route, full.DryRun = "reboot", true
	full.Labels = map[string]string{"alertname": "NodeKernelDeadlock", "node": "n1", "quote": "\"<&>\"\n", "ü": "é"}
	full.Params = map[string]string{"drain_timeout": "2m"}
	full.Enqueued = time.Now()
	full.RequestedBy, full.Reason = "alice", "manual: disk replaced"
	bare := job("bare")
	if _, err := q.Enqueue(ctx, []Job{full, bare}); err != nil {
		t.Fatal(err)
	}
	ds, _, err := q.Read(ctx, "w", 10, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 {
		t.Fatalf("read %d entries, want 2", len(ds))
	}
	for i, want := range []Job{full, bare} {
		got := ds[i].Job
		if !got.StartsAt.Equal(want.StartsAt) || !got.Enqueued.Equal(want.Enqueued) {
			t.Errorf("job %d times: got %v / %v, want %v / %v", i, got.StartsAt, got.Enqueued, want.StartsAt, want.Enqueued)
		}
		got.StartsAt, got.Enqueued, want.StartsAt, want.Enqueued = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) {
			t.Errorf("job %d:\n got %#v\nwant %#v", i, got, want)
		}
	}
	raw, err := q.rdb.XRange(ctx, q.stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if s := raw[1].Values["job"].(string); strings.Contains(s, "dryRun") || strings.Contains(s, "labels") || strings.Contains(s, "requestedBy") {
		t.Errorf("a job without the optional fields carries them: %s", s)
	}
}
