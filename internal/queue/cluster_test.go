package queue

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/testenv"
)

// TestOnRedisCluster runs every script, pipeline and transaction of the
// queue against a real three-master Redis Cluster: Enqueue (stream and
// dedupe keys in one script), RecordResolved, Read, Touch, Ack (MULTI),
// Backlog, Refs, Requeue (stream, dedupe key and dead entries in one
// script) and PruneConsumers. Any CROSSSLOT fails it.
func TestOnRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server (integration)")
	}
	_, rdb := testenv.NewRedisCluster(t)
	ctx := context.Background()
	q := New(rdb, Options{Prefix: "t", ClaimAfter: time.Hour})
	testenv.ClusterOK(t, "ensure group", q.EnsureGroup(ctx))

	// Enough jobs that untagged dedupe keys would spread over every master.
	var jobs []Job
	for i := range 20 {
		jobs = append(jobs, job(fmt.Sprintf("fp%d", i)))
	}
	jobs = append(jobs, job("fp0"))
	added, err := q.Enqueue(ctx, jobs)
	testenv.ClusterOK(t, "enqueue", err)
	if added[0] != true || added[20] != false {
		t.Fatalf("enqueue: added %v, want the repeat of fp0 refused", added)
	}
	resolved := map[string]time.Time{}
	for i := range 20 {
		resolved[fmt.Sprintf("fp%d", i)] = time.Now()
	}
	testenv.ClusterOK(t, "record resolved", q.RecordResolved(ctx, resolved))
	ok, _, err := q.Resolved(ctx, "fp7")
	testenv.ClusterOK(t, "resolved", err)
	if !ok {
		t.Fatal("fp7 not recorded as resolved")
	}

	ds, bad, err := q.Read(ctx, "c1", 5, 0)
	testenv.ClusterOK(t, "read", err)
	if len(ds) != 5 || len(bad) != 0 {
		t.Fatalf("read %d (%d bad), want 5", len(ds), len(bad))
	}
	testenv.ClusterOK(t, "touch", q.Touch(ctx, "c1", ds[0].ID))
	testenv.ClusterOK(t, "ack", q.Ack(ctx, ds[0].ID))
	lag, pending, err := q.Backlog(ctx)
	testenv.ClusterOK(t, "backlog", err)
	if lag != 15 || pending != 4 {
		t.Fatalf("backlog: lag %d pending %d, want 15 and 4", lag, pending)
	}

	// A dead entry (acknowledged, not deleted) is deleted by Requeue.
	testenv.ClusterOK(t, "xack", rdb.XAck(ctx, q.Stream(), "workers", ds[1].ID).Err())
	refs, err := q.Refs(ctx)
	testenv.ClusterOK(t, "refs", err)
	dead := refs.DeadFor(ds[1].Job.RunID)
	if len(dead) != 1 || refs.Has(ds[1].Job.RunID) {
		t.Fatalf("refs: dead %v, live %v", dead, refs.Live[ds[1].Job.RunID])
	}
	_, err = q.Requeue(ctx, ds[1].Job, dead...)
	testenv.ClusterOK(t, "requeue", err)
	refs, err = q.Refs(ctx)
	testenv.ClusterOK(t, "refs after requeue", err)
	if !refs.Has(ds[1].Job.RunID) || len(refs.DeadFor(ds[1].Job.RunID)) != 0 {
		t.Fatalf("requeue: live %v dead %v", refs.Live[ds[1].Job.RunID], refs.DeadFor(ds[1].Job.RunID))
	}

	// A consumer with nothing pending is pruned (one script, XINFO + DELCONSUMER).
	testenv.ClusterOK(t, "create consumer", rdb.XGroupCreateConsumer(ctx, q.Stream(), "workers", "idle").Err())
	time.Sleep(20 * time.Millisecond)
	gone, err := q.PruneConsumers(ctx, 10*time.Millisecond)
	testenv.ClusterOK(t, "prune consumers", err)
	if fmt.Sprint(gone) != "[idle]" {
		t.Fatalf("pruned %v, want [idle] (c1 has entries pending)", gone)
	}
}
