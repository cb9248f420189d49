package queue

import (
	"context"
	"testing"
	"time"
)

// TestReclaim: a worker re-takes an entry it left pending only if nobody
// touched it since (idle at least minIdle) and it was not acknowledged.
func TestReclaim(t *testing.T) {
	q, _ := newQueue(t, time.Hour)
	ctx := context.Background()
	if _, err := q.Enqueue(ctx, []Job{job("a"), job("b"), job("c")}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 3 {
		ds, _, err := q.Read(ctx, "w-0", 1, 10*time.Millisecond)
		if err != nil || len(ds) != 1 {
			t.Fatalf("read: %v %v", ds, err)
		}
		ids = append(ids, ds[0].ID)
	}
	time.Sleep(300 * time.Millisecond)
	// b: another worker touched it since; c: acknowledged (run final).
	if err := q.Touch(ctx, "w-1", ids[1]); err != nil {
		t.Fatal(err)
	}
	if err := q.Ack(ctx, ids[2]); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false, false} {
		got, err := q.Reclaim(ctx, "w-2", ids[i], 250*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("Reclaim of entry %d = %v; want %v", i, got, want)
		}
	}
	// Taken: its idle time starts again, so a second reclaim with the
	// same idle time fails.
	if got, err := q.Reclaim(ctx, "w-3", ids[0], 250*time.Millisecond); err != nil || got {
		t.Errorf("second Reclaim = %v, %v; want false", got, err)
	}
}
