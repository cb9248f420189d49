package queue

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestPruneConsumers: consumers of pods long gone are deleted when they
// have nothing pending; one with a pending entry, and a live one, stay.
func TestPruneConsumers(t *testing.T) {
	q, r := newQueue(t, time.Minute)
	ctx := context.Background()
	rdb := r.Client(0)
	t.Cleanup(func() { rdb.Close() })
	if _, err := q.Enqueue(ctx, []Job{job("a"), job("b")}); err != nil {
		t.Fatal(err)
	}
	read := func(consumer string) []Delivery {
		t.Helper()
		ds, _, err := q.Read(ctx, consumer, 1, 10*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		return ds
	}
	// old-pod-0 died holding an entry; old-pod-1 finished its run; old-pod-2
	// never got one (created explicitly: a read that finds nothing does
	// not create a consumer).
	if ds := read("old-pod-0"); len(ds) != 1 {
		t.Fatalf("old-pod-0 read %d", len(ds))
	}
	ds := read("old-pod-1")
	if len(ds) != 1 {
		t.Fatalf("old-pod-1 read %d", len(ds))
	}
	if err := q.Ack(ctx, ds[0].ID); err != nil {
		t.Fatal(err)
	}
	create := func(consumer string) {
		t.Helper()
		if err := rdb.XGroupCreateConsumer(ctx, q.Stream(), q.group, consumer).Err(); err != nil {
			t.Fatal(err)
		}
	}
	create("old-pod-2")
	time.Sleep(300 * time.Millisecond)
	create("new-pod-0") // live: seen a moment ago

	deleted, err := q.PruneConsumers(ctx, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(deleted) != "[old-pod-1 old-pod-2]" {
		t.Fatalf("deleted %v", deleted)
	}
	cs, err := rdb.XInfoConsumers(ctx, q.Stream(), q.group).Result()
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, c := range cs {
		left = append(left, fmt.Sprintf("%s:%d", c.Name, c.Pending))
	}
	if fmt.Sprint(left) != "[new-pod-0:0 old-pod-0:1]" {
		t.Fatalf("consumers left %v", left)
	}
	if _, pending, err := q.Backlog(ctx); err != nil || pending != 1 {
		t.Fatalf("pending %d (%v): the dead consumer's entry must stay pending", pending, err)
	}
	// Nothing more to delete; an idle threshold not yet reached deletes nothing.
	if deleted, err := q.PruneConsumers(ctx, 200*time.Millisecond); err != nil || len(deleted) != 0 {
		t.Fatalf("second pass deleted %v (%v)", deleted, err)
	}
	create("old-pod-3")
	if deleted, err := q.PruneConsumers(ctx, time.Hour); err != nil || len(deleted) != 0 {
		t.Fatalf("deleted %v (%v) under the idle threshold", deleted, err)
	}

	// Once its entry is claimed by another worker, the dead consumer goes too.
	q2 := New(rdb, Options{Prefix: "t", ClaimAfter: 100 * time.Millisecond})
	time.Sleep(300 * time.Millisecond)
	ds, _, err = q2.Read(ctx, "new-pod-0", 1, 10*time.Millisecond)
	if err != nil || len(ds) != 1 || !ds[0].Claimed {
		t.Fatalf("claim: %v %v", ds, err)
	}
	deleted, err = q.PruneConsumers(ctx, 200*time.Millisecond)
	if err != nil || fmt.Sprint(deleted) != "[old-pod-0 old-pod-3]" {
		t.Fatalf("deleted %v (%v)", deleted, err)
	}

	// No stream, or a stream without the group: nothing to do, no error.
	none, nogroup := New(rdb, Options{Prefix: "none"}), New(rdb, Options{Prefix: "nogroup"})
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: nogroup.Stream(), Values: []any{"k", "v"}}).Err(); err != nil {
		t.Fatal(err)
	}
	for _, empty := range []*Queue{none, nogroup} {
		if deleted, err := empty.PruneConsumers(ctx, time.Second); err != nil || deleted != nil {
			t.Errorf("%s: deleted %v, err %v", empty.Stream(), deleted, err)
		}
	}
}
