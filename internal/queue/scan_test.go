package queue

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/testenv"
)

// TestRefsAndRequeue: Refs tells live entries (unread, pending) from dead
// ones (acknowledged but left in the stream) and from pending IDs whose
// entry is gone; Requeue brings a run back whatever the dedupe key says.
func TestRefsAndRequeue(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server (integration)")
	}
	rdb := testenv.NewRedisClient(t)
	ctx := context.Background()
	q := New(rdb, Options{Prefix: "t"})

	refs, err := q.Refs(ctx)
	if err != nil || len(refs.Live) != 0 || len(refs.Dead) != 0 {
		t.Fatalf("no stream: refs %+v, err %v", refs, err)
	}
	at := time.Now().UTC()
	job := func(fp string) Job {
		return Job{RunID: "run-" + fp, Fingerprint: fp, StartsAt: at, Node: "n-" + fp, Runbook: "cordon"}
	}
	jobs := []Job{job("a"), job("b"), job("c"), job("d")}
	if _, err := q.Enqueue(ctx, jobs); err != nil {
		t.Fatal(err)
	}
	// No consumer group yet: everything is unread (the first read creates
	// the group from the start of the stream).
	if refs, err = q.Refs(ctx); err != nil || len(refs.Live) != 4 {
		t.Fatalf("before the group exists: %d live, err %v; want 4", len(refs.Live), err)
	}
	if err := q.EnsureGroup(ctx); err != nil {
		t.Fatal(err)
	}
	ds, _, err := q.Read(ctx, "c1", 2, 10*time.Millisecond)
	if err != nil || len(ds) != 2 || ds[0].Job.RunID != "run-a" || ds[1].Job.RunID != "run-b" {
		t.Fatalf("read: %+v, %v", ds, err)
	}
	// a: pending, but its entry is deleted (XTRIM, lost write). b: XACKed by
	// hand, left in the stream. c, d: unread.
	if err := rdb.XDel(ctx, q.Stream(), ds[0].ID).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.XAck(ctx, q.Stream(), "workers", ds[1].ID).Err(); err != nil {
		t.Fatal(err)
	}
	if refs, err = q.Refs(ctx); err != nil {
		t.Fatal(err)
	}
	if refs.Has("run-a") || refs.Has("run-b") || !refs.Has("run-c") || !refs.Has("run-d") {
		t.Fatalf("live: %+v; want run-c and run-d only", refs.Live)
	}
	if got := refs.DeadFor("run-b"); !slices.Equal(got, []string{ds[1].ID}) {
		t.Fatalf("dead entries for run-b: %v; want [%s]", got, ds[1].ID)
	}
	if len(refs.Dead) != 1 {
		t.Fatalf("dead: %+v; want only b's entry", refs.Dead)
	}
	// c delivered: pending, still live.
	ds2, _, err := q.Read(ctx, "c1", 1, 10*time.Millisecond)
	if err != nil || len(ds2) != 1 || ds2[0].Job.RunID != "run-c" {
		t.Fatalf("read c: %+v, %v", ds2, err)
	}
	if refs, _ = q.Refs(ctx); !refs.Has("run-c") || !refs.Live["run-c"][0].Pending || refs.Live["run-c"][0].Consumer != "c1" {
		t.Fatalf("run-c: %+v; want pending with c1", refs.Live["run-c"])
	}

	// Enqueue dedupes on the alert identity, so it cannot bring a back.
	if added, err := q.Enqueue(ctx, []Job{job("a")}); err != nil || added[0] {
		t.Fatalf("enqueue a again: added %v, err %v; want a duplicate", added, err)
	}
	if _, err := q.Requeue(ctx, job("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Requeue(ctx, job("b"), refs.DeadFor("run-b")...); err != nil {
		t.Fatal(err)
	}
	if refs, _ = q.Refs(ctx); !refs.Has("run-a") || !refs.Has("run-b") || len(refs.Dead) != 0 {
		t.Fatalf("after requeue: live %v dead %v; want a and b live, nothing dead", refs.Live, refs.Dead)
	}
	// The dedupe key is kept: a late retry of a's alert starts nothing.
	if added, _ := q.Enqueue(ctx, []Job{job("a")}); added[0] {
		t.Fatal("a retry of a's alert was enqueued after the requeue")
	}
	// A worker is handed the re-queued entries and loads the runs by ID.
	ds3, _, err := q.Read(ctx, "c2", 10, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range ds3 {
		ids = append(ids, d.Job.RunID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"run-a", "run-b", "run-d"}) {
		t.Fatalf("delivered %v; want run-a, run-b, run-d", ids)
	}
}
