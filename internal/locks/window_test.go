package locks_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/locks"
)

func TestWindowCountsAndIsIdempotent(t *testing.T) {
	srv, rdb := newRedis(t)
	rdb2 := srv.Client(0)
	t.Cleanup(func() { _ = rdb2.Close() })
	w, w2 := locks.NewWindow(rdb, "t"), locks.NewWindow(rdb2, "t")
	ctx := context.Background()
	const day = 24 * time.Hour

	for i, id := range []string{"run-1", "run-2", "run-2", "run-1", "run-3"} {
		n, err := []*locks.Window{w, w2}[i%2].Record(ctx, "node-a", id, day)
		if err != nil {
			t.Fatal(err)
		}
		if want := []int{1, 2, 2, 2, 3}[i]; n != want {
			t.Errorf("Record #%d (%s) = %d, want %d", i, id, n, want)
		}
	}
	// The same run recorded by many workers at once still counts once.
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := w.Record(ctx, "node-a", "run-4", day); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n, err := w2.Count(ctx, "node-a", day); n != 4 || err != nil {
		t.Errorf("Count = %d, %v; want 4", n, err)
	}
	if n, err := w.Count(ctx, "node-b", day); n != 0 || err != nil {
		t.Errorf("Count of another key = %d, %v; want 0", n, err)
	}
	if n, _ := locks.NewWindow(rdb, "other").Count(ctx, "node-a", day); n != 0 {
		t.Errorf("Count under another prefix = %d, want 0", n)
	}
}

// Clear forgets the key's events (and says how many were inside the
// window), leaves other keys alone, and the key counts from zero again.
func TestWindowClear(t *testing.T) {
	_, rdb := newRedis(t)
	w := locks.NewWindow(rdb, "t")
	ctx := context.Background()
	const day = 24 * time.Hour
	for _, id := range []string{"run-1", "run-2", "run-3"} {
		if _, err := w.Record(ctx, "node-a", id, day); err != nil {
			t.Fatal(err)
		}
	}
	mustRecord(t, w, "node-b", "run-9", day, 1)
	if n, err := w.Clear(ctx, "node-a", day); n != 3 || err != nil {
		t.Fatalf("Clear = %d, %v; want 3", n, err)
	}
	if n, err := w.Count(ctx, "node-a", day); n != 0 || err != nil {
		t.Errorf("Count after Clear = %d, %v; want 0", n, err)
	}
	if n, _ := w.Count(ctx, "node-b", day); n != 1 {
		t.Errorf("Clear of node-a changed node-b: Count = %d, want 1", n)
	}
	if n, err := w.Clear(ctx, "node-a", day); n != 0 || err != nil {
		t.Errorf("Clear of an empty key = %d, %v; want 0", n, err)
	}
	// A run recorded before the clear counts again if recorded again.
	mustRecord(t, w, "node-a", "run-1", day, 1)
	if _, err := w.Clear(ctx, "", day); err == nil {
		t.Error("Clear of an empty key name: no error")
	}
}

func TestWindowSlides(t *testing.T) {
	_, rdb := newRedis(t)
	w := locks.NewWindow(rdb, "t")
	ctx := context.Background()
	const window = 500 * time.Millisecond

	if o, err := w.Oldest(ctx, "n", window); err != nil || !o.IsZero() {
		t.Fatalf("Oldest of an empty window = %v, %v; want zero", o, err)
	}
	before := redisNow(t, rdb)
	mustRecord(t, w, "n", "a", window, 1)
	after := redisNow(t, rdb)
	oldest, err := w.Oldest(ctx, "n", window)
	if err != nil || oldest.Before(before.Truncate(time.Millisecond)) || oldest.After(after) {
		t.Fatalf("Oldest = %v, %v; want within [%v, %v]", oldest, err, before, after)
	}

	time.Sleep(window / 2)
	mustRecord(t, w, "n", "b", window, 2)
	mustRecord(t, w, "n", "a", window, 2) // still in the window: unchanged
	if o, _ := w.Oldest(ctx, "n", window); !o.Equal(oldest) {
		t.Errorf("re-recording a moved Oldest from %v to %v", oldest, o)
	}

	// a leaves the window at oldest+window; b is still in it.
	time.Sleep(time.Until(oldest.Add(window)) + 30*time.Millisecond)
	if n, _ := w.Count(ctx, "n", window); n != 1 {
		t.Errorf("Count after a left = %d, want 1", n)
	}
	if o, _ := w.Oldest(ctx, "n", window); !o.After(oldest) {
		t.Errorf("Oldest after a left = %v, want later than %v", o, oldest)
	}
	// A longer window over the same events still sees both.
	if n, _ := w.Count(ctx, "n", time.Hour); n != 2 {
		t.Errorf("Count over an hour = %d, want 2", n)
	}
	// Once out of the window, the same id is a new run.
	mustRecord(t, w, "n", "a", window, 2)

	time.Sleep(window + 30*time.Millisecond)
	if n, _ := w.Count(ctx, "n", window); n != 0 {
		t.Errorf("Count after the window = %d, want 0", n)
	}
	if o, _ := w.Oldest(ctx, "n", window); !o.IsZero() {
		t.Errorf("Oldest after the window = %v, want zero", o)
	}
	// The key expires with its newest event.
	if n, _ := rdb.Exists(ctx, "t:window:{n}").Result(); n != 0 {
		t.Error("window key outlived its newest event")
	}
}

func TestWindowRejectsBadArguments(t *testing.T) {
	w := locks.NewWindow(nil, "t") // never reaches Redis
	ctx := context.Background()
	if _, err := w.Record(ctx, "", "id", time.Second); err == nil {
		t.Error("Record with empty key: want error")
	}
	if _, err := w.Record(ctx, "k", "", time.Second); err == nil {
		t.Error("Record with empty id: want error")
	}
	if _, err := w.Count(ctx, "k", 999*time.Microsecond); err == nil {
		t.Error("Count with window below 1ms: want error")
	}
	if _, err := w.Oldest(ctx, "k", 0); err == nil {
		t.Error("Oldest with zero window: want error")
	}
}

func mustRecord(t *testing.T, w *locks.Window, key, id string, window time.Duration, want int) {
	t.Helper()
	n, err := w.Record(context.Background(), key, id, window)
	if err != nil || n != want {
		t.Fatalf("Record(%q, %q) = %d, %v; want %d", key, id, n, err, want)
	}
}

// redisNow is the Redis server's clock.
func redisNow(t *testing.T, rdb redis.Cmdable) time.Time {
	t.Helper()
	now, err := rdb.Time(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return now
}
