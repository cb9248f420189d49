package reconcile_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/node-healer/node-healer/internal/locks"
	"github.com/node-healer/node-healer/internal/queue"
	"github.com/node-healer/node-healer/internal/reconcile"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/runstore"
	"github.com/node-healer/node-healer/internal/testenv"
)

// listedNodes is a NodeLister over fixed nodes.
type listedNodes struct{ nodes []*corev1.Node }

func (l *listedNodes) List() ([]*corev1.Node, error) { return l.nodes, nil }
func (l *listedNodes) Synced() bool                  { return true }

// TestOnRedisCluster runs the reconciler's scans against a real
// three-master Redis Cluster: the run store's Active (MGET), the stream's
// Refs, the re-queue of a lost run (stream, dedupe key and a dead entry in
// one script) under the node's lease, and the suspects hash (MULTI) of a
// marked node, recorded then forgotten. Any CROSSSLOT fails it.
func TestOnRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server (integration)")
	}
	_, rdb := testenv.NewRedisCluster(t)
	ctx := context.Background()
	store := runstore.New(rdb, prefix, time.Hour)
	q := queue.New(rdb, queue.Options{Prefix: prefix})
	testenv.ClusterOK(t, "ensure group", q.EnsureGroup(ctx))

	// Runs on many nodes, one of them lost: its entry was acknowledged by
	// hand (dead), so nothing leads a worker to it.
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	var lost *runbooks.Run
	for i := range 10 {
		fp := fmt.Sprintf("fp%d", i)
		run := runbooks.NewRun(queue.Job{RunID: runbooks.RunID(fp, at), Fingerprint: fp, StartsAt: at,
			Node: fmt.Sprintf("n%d", i), Runbook: "cordon"}, time.Now())
		run.Status = runbooks.StatusRunning
		testenv.ClusterOK(t, "save", store.Save(ctx, run))
		if i == 0 {
			lost = run // its entry is the stream's first
		}
		_, err := q.Enqueue(ctx, []queue.Job{{RunID: run.ID, Fingerprint: fp, StartsAt: at, Node: run.Node, Runbook: "cordon"}})
		testenv.ClusterOK(t, "enqueue", err)
	}
	ds, _, err := q.Read(ctx, "c", 1, 0)
	testenv.ClusterOK(t, "read", err)
	if len(ds) != 1 || ds[0].Job.RunID != lost.ID {
		t.Fatalf("read %+v, want the lost run's entry first", ds)
	}
	testenv.ClusterOK(t, "xack", rdb.XAck(ctx, q.Stream(), "workers", ds[0].ID).Err())

	marked := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "m1",
		Annotations: map[string]string{runbooks.AnnotationCordonedBy: "gone"}}, Spec: corev1.NodeSpec{Unschedulable: true}}
	lister := &listedNodes{nodes: []*corev1.Node{marked}}
	r := &reconcile.Reconciler{Runs: store, Stream: q, Locker: locks.New(rdb, prefix), Redis: rdb, Prefix: prefix,
		Nodes: lister, Interval: time.Hour, Grace: 2 * time.Hour, LockTTL: 5 * time.Second, Log: testLog(t),
		Now: func() time.Time { return time.Now().Add(3 * time.Hour) }} // every run looks idle past the grace

	rep, err := r.Pass(ctx)
	testenv.ClusterOK(t, "pass", err)
	if fmt.Sprint(rep.Requeued) != fmt.Sprint([]string{lost.ID}) || rep.Waiting != 1 || len(rep.Escalated) != 0 {
		t.Fatalf("pass: %+v; want %s re-queued and the marked node waiting", rep, lost.ID)
	}
	refs, err := q.Refs(ctx)
	testenv.ClusterOK(t, "refs", err)
	if !refs.Has(lost.ID) || len(refs.DeadFor(lost.ID)) != 0 {
		t.Fatalf("after the pass: live %v, dead %v", refs.Live[lost.ID], refs.DeadFor(lost.ID))
	}
	n, err := rdb.HLen(ctx, prefix+":reconcile:suspects").Result()
	testenv.ClusterOK(t, "suspects", err)
	if n != 1 {
		t.Fatalf("%d suspects recorded, want 1", n)
	}

	// The mark goes away: the suspect is forgotten.
	lister.nodes = nil
	rep, err = r.Pass(ctx)
	testenv.ClusterOK(t, "second pass", err)
	if len(rep.Requeued) != 0 || rep.Waiting != 0 {
		t.Fatalf("second pass: %+v, want nothing to do", rep)
	}
	if n, _ := rdb.HLen(ctx, prefix+":reconcile:suspects").Result(); n != 0 {
		t.Fatalf("%d suspects after the mark went away, want 0", n)
	}
}
