package reconcile_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/node-healer/node-healer/internal/kube"
	"github.com/node-healer/node-healer/internal/locks"
	"github.com/node-healer/node-healer/internal/queue"
	"github.com/node-healer/node-healer/internal/reconcile"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/runstore"
	"github.com/node-healer/node-healer/internal/testenv"
	"github.com/node-healer/node-healer/internal/worker"
)

// Node tests run slower passes: API server round trips, and a live
// worker must notice a lost lease (LockTTL/3) well within grace − interval.
const (
	nodeInterval = 250 * time.Millisecond
	nodeGrace    = 1500 * time.Millisecond
	nodeBound    = nodeInterval + nodeGrace
	workerTTL    = 600 * time.Millisecond
)

// timedKube records when the reconciler put the needs-attention label on
// each node.
type timedKube struct {
	reconcile.NodeAPI
	mu sync.Mutex
	at map[string]time.Time
}

func (k *timedKube) Annotate(ctx context.Context, node string, ann, labels map[string]*string) error {
	err := k.NodeAPI.Annotate(ctx, node, ann, labels)
	if _, ok := labels[runbooks.LabelNeedsAttention]; ok && err == nil {
		k.mu.Lock()
		k.at[node] = time.Now()
		k.mu.Unlock()
	}
	return err
}

func (k *timedKube) escalatedAt(node string) (time.Time, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	t, ok := k.at[node]
	return t, ok
}

func markedRegistry(t *testing.T) *runbooks.Registry {
	cordon := runbooks.Step{Name: "cordon", Do: runbooks.Cordon}
	do := func(name string, f func(ctx context.Context) error) runbooks.Step {
		return runbooks.Step{Name: name, Do: func(ctx context.Context, _ *runbooks.Exec) (runbooks.Outcome, string, error) {
			if err := f(ctx); err != nil {
				return "", "", err
			}
			return runbooks.OutcomeDone, "", nil
		}}
	}
	wait := do("wait", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	fail := do("fail", func(context.Context) error { return errors.New("disk on fire") })
	esc := do("check", func(context.Context) error { return runbooks.Escalate("the BMC does not answer") })
	reg, err := runbooks.NewRegistry(
		&runbooks.Runbook{Name: "cordon", Steps: []runbooks.Step{cordon}},
		&runbooks.Runbook{Name: "cordon-wait", Steps: []runbooks.Step{cordon, wait}},
		&runbooks.Runbook{Name: "cordon-fail", Steps: []runbooks.Step{cordon, fail}},
		&runbooks.Runbook{Name: "cordon-escalate", Steps: []runbooks.Step{cordon, esc}},
	)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func clusterPool(t *testing.T, rdb redis.UniversalClient, name string, reg *runbooks.Registry, nodes *kube.Nodes) *worker.Pool {
	st := runstore.New(rdb, prefix, time.Hour)
	log := testLog(t).With("worker", name)
	return &worker.Pool{
		Queue: queue.New(rdb, queue.Options{Prefix: prefix, ClaimAfter: 3 * time.Second}), Locker: locks.New(rdb, prefix),
		Store: st, Name: name, Count: 4, LockTTL: workerTTL, Block: 50 * time.Millisecond, Log: log,
		Executor: &runbooks.Executor{Registry: reg, Store: st, Deps: runbooks.Deps{Nodes: nodes, Writer: nodes}, Log: log, Worker: name},
	}
}

func getNode(t *testing.T, c kubernetes.Interface, name string) (unschedulable bool, labels, ann map[string]string) {
	t.Helper()
	n, err := c.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n.Spec.Unschedulable, n.Labels, n.Annotations
}

func events(t *testing.T, c kubernetes.Interface, node, reason string) []string {
	t.Helper()
	evs, err := c.CoreV1().Events(metav1.NamespaceDefault).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + node})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs.Items {
		if e.Reason == reason {
			out = append(out, e.Message)
		}
	}
	return out
}

// TestMarkedNodes: nodes node-healer cordoned, against a real
// kube-apiserver (kwok nodes) and redis-server.
//
//   - lost: the run was interrupted, then Redis lost its record and its
//     stream entry → escalated within interval + grace of the loss, still
//     cordoned, with label, annotation and a Warning Event.
//   - fresh: same, but the loss right after the cordon → not escalated
//     before the mark is grace old.
//   - held: same as lost, but a worker holds the node's lease → left alone
//     while held, escalated within interval + grace once released.
//   - failed: the run failed after cordoning → escalated.
//   - done: a cordon runbook succeeded (cordoned by design) → left alone.
//   - escalated: the run escalated itself and an operator removed the
//     label → not escalated again.
//   - live: Redis loses everything (FLUSHALL) while a worker is in the
//     middle of the run → the worker stops without writing (its lease is
//     gone) and the node is escalated within interval + grace; nodes
//     already escalated are not escalated again; done (cordoned by design,
//     its record now gone too) is escalated.
func TestMarkedNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server, kube-apiserver, etcd and kwok (integration)")
	}
	names := []string{"lost", "fresh", "held", "failed", "done", "escalated", "live"}
	cl := testenv.NewCluster(t, testenv.ClusterOptions{Nodes: names})
	rdb := testenv.NewRedisClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	nodes := &kube.Nodes{Client: cl.Client, Instance: "test"}
	cache := kube.StartNodeCache(ctx, cl.Client, 0)
	if !cache.WaitSynced(ctx) {
		t.Fatal("node cache did not sync")
	}
	reg := markedRegistry(t)
	store := runstore.New(rdb, prefix, time.Hour)
	q := queue.New(rdb, queue.Options{Prefix: prefix})

	rec, _ := newReconciler(t, rdb)
	rec.Interval, rec.Grace = nodeInterval, nodeGrace
	tk := &timedKube{NodeAPI: nodes, at: map[string]time.Time{}}
	rec.Nodes, rec.Kube = cache, tk
	start(t, rec)

	runOn := func(node, book string) string { return enqueue(t, q, "fp-"+node, node, book) }
	status := func(id string) runbooks.Status {
		run, err := store.Load(ctx, id)
		if err != nil {
			return ""
		}
		return run.Status
	}
	cordonedBy := func(node, id string) bool {
		_, _, ann := getNode(t, cl.Client, node)
		return ann[runbooks.AnnotationCordonedBy] == id
	}

	// Final runs.
	p1 := runPool(t, clusterPool(t, rdb, "p1", reg, nodes))
	done, failed, escalated := runOn("done", "cordon"), runOn("failed", "cordon-fail"), runOn("escalated", "cordon-escalate")
	waitFor(t, "the final runs", 20*time.Second, func() bool {
		return status(done) == runbooks.StatusSucceeded && status(failed) == runbooks.StatusFailed && status(escalated) == runbooks.StatusEscalated
	})
	p1()
	// An operator takes the escalated node over and removes the label.
	if err := nodes.Annotate(ctx, "escalated", nil, map[string]*string{runbooks.LabelNeedsAttention: nil}); err != nil {
		t.Fatal(err)
	}

	// Interrupted runs: cordoned, then the worker stopped (its entry stays
	// pending, its record says running).
	p2 := runPool(t, clusterPool(t, rdb, "p2", reg, nodes))
	lost, held := runOn("lost", "cordon-wait"), runOn("held", "cordon-wait")
	waitFor(t, "lost and held cordoned", 20*time.Second, func() bool { return cordonedBy("lost", lost) && cordonedBy("held", held) })
	p2()
	if status(lost) != runbooks.StatusRunning || status(held) != runbooks.StatusRunning {
		t.Fatalf("interrupted runs: lost %s, held %s; want running", status(lost), status(held))
	}
	// A worker holds held's node (as a live worker whose record Redis lost).
	heldLease, err := locks.New(rdb, prefix).Acquire(ctx, "node:held", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, stopKeep := heldLease.Keep(ctx)
	defer stopKeep()

	// Redis loses the two runs (record and entry) once their marks are
	// older than the grace period (plus managedFields' 1s precision).
	time.Sleep(nodeGrace + time.Second)
	loseRun := func(id string) {
		refs, err := q.Refs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, ref := range refs.Live[id] {
			rdb.XAck(ctx, q.Stream(), "workers", ref.Entry)
			rdb.XDel(ctx, q.Stream(), ref.Entry)
		}
		if err := rdb.Del(ctx, "{"+prefix+"}:run:"+id).Err(); err != nil {
			t.Fatal(err)
		}
	}
	loseRun(lost)
	loseRun(held)
	lostAt := time.Now()

	// fresh: cordoned, and lost at once.
	p3 := runPool(t, clusterPool(t, rdb, "p3", reg, nodes))
	fresh := runOn("fresh", "cordon-wait")
	waitFor(t, "fresh cordoned", 20*time.Second, func() bool { return cordonedBy("fresh", fresh) })
	freshCordoned := time.Now()
	p3()
	loseRun(fresh)

	waitFor(t, "lost escalated", nodeBound+10*time.Second, func() bool { _, ok := tk.escalatedAt("lost"); return ok })
	at, _ := tk.escalatedAt("lost")
	t.Logf("lost: record and entry lost → escalated: %s (bound interval %s + grace %s = %s)", at.Sub(lostAt).Round(time.Millisecond), nodeInterval, nodeGrace, nodeBound)
	if at.Sub(lostAt) > nodeBound+slack {
		t.Errorf("lost escalated %s after the loss; bound %s", at.Sub(lostAt), nodeBound)
	}
	waitFor(t, "fresh escalated", nodeBound+time.Second+10*time.Second, func() bool { _, ok := tk.escalatedAt("fresh"); return ok })
	at, _ = tk.escalatedAt("fresh")
	t.Logf("fresh: cordon → escalated: %s (not before grace %s)", at.Sub(freshCordoned).Round(time.Millisecond), nodeGrace)
	if at.Sub(freshCordoned) < nodeGrace-100*time.Millisecond {
		t.Errorf("fresh escalated %s after its cordon, inside the grace period %s", at.Sub(freshCordoned), nodeGrace)
	}
	waitFor(t, "failed escalated", 10*time.Second, func() bool { _, ok := tk.escalatedAt("failed"); return ok })

	for _, node := range []string{"lost", "fresh", "failed"} {
		unsched, labels, ann := getNode(t, cl.Client, node)
		if !unsched {
			t.Errorf("%s: uncordoned; the reconciler must leave it cordoned", node)
		}
		if labels[runbooks.LabelNeedsAttention] != "true" || ann[runbooks.AnnotationNeedsAttention] == "" || ann[runbooks.AnnotationEscalatedBy] == "" {
			t.Errorf("%s: not marked for attention: labels %v annotations %v", node, labels, ann)
		}
		if len(events(t, cl.Client, node, "NodeHealerEscalated")) == 0 {
			t.Errorf("%s: no NodeHealerEscalated event", node)
		}
	}
	if _, _, ann := getNode(t, cl.Client, "lost"); !strings.Contains(ann[runbooks.AnnotationNeedsAttention], "whose record is gone") ||
		ann[runbooks.AnnotationEscalatedBy] != lost {
		t.Errorf("lost: annotations %v; want the reason and run %s", ann, lost)
	}
	if msgs := events(t, cl.Client, "lost", "NodeHealerEscalated"); len(msgs) != 1 || !strings.Contains(msgs[0], "run "+lost) {
		t.Errorf("lost: events %q; want one naming run %s", msgs, lost)
	}
	if _, _, ann := getNode(t, cl.Client, "failed"); !strings.Contains(ann[runbooks.AnnotationNeedsAttention], "failed") {
		t.Errorf("failed: reason %q", ann[runbooks.AnnotationNeedsAttention])
	}

	// held stays untouched while its lease is held…
	time.Sleep(2 * nodeBound)
	if _, ok := tk.escalatedAt("held"); ok {
		t.Fatal("held was escalated while a worker held its node lease")
	}
	// …and is escalated once it is released.
	stopKeep()
	if err := heldLease.Release(ctx); err != nil {
		t.Fatal(err)
	}
	released := time.Now()
	waitFor(t, "held escalated", nodeBound+10*time.Second, func() bool { _, ok := tk.escalatedAt("held"); return ok })
	at, _ = tk.escalatedAt("held")
	t.Logf("held: lease released → escalated: %s (bound %s)", at.Sub(released).Round(time.Millisecond), nodeBound)
	if at.Sub(released) > nodeBound+slack {
		t.Errorf("held escalated %s after release; bound %s", at.Sub(released), nodeBound)
	}
	for _, node := range []string{"done", "escalated"} {
		if _, ok := tk.escalatedAt(node); ok {
			t.Errorf("%s was escalated by the reconciler", node)
		}
	}
	// Counted once the node lease is released, just after the label.
	waitFor(t, "node_healer_orphans_total{kind=node_escalated} = 4 (lost, fresh, failed, held)", 5*time.Second,
		func() bool { return orphans(rec, reconcile.KindNodeEscalated) == 4 })

	// live: Redis loses everything while a worker is in the run's wait step.
	p4 := runPool(t, clusterPool(t, rdb, "p4", reg, nodes))
	live := runOn("live", "cordon-wait")
	waitFor(t, "live cordoned", 20*time.Second, func() bool { return cordonedBy("live", live) && status(live) == runbooks.StatusRunning })
	time.Sleep(nodeGrace + time.Second) // the mark is old: only the node lease protects the node now
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	flushed := time.Now()
	// The worker finds its lease gone at its next renewal and stops
	// without writing (fencing): the run is lost for good, the node is
	// handed to a human.
	waitFor(t, "live escalated", nodeBound+10*time.Second, func() bool { _, ok := tk.escalatedAt("live"); return ok })
	at, _ = tk.escalatedAt("live")
	t.Logf("live: FLUSHALL under a running worker → escalated: %s (bound %s)", at.Sub(flushed).Round(time.Millisecond), nodeBound)
	if at.Sub(flushed) > nodeBound+slack {
		t.Errorf("live escalated %s after the flush; bound %s", at.Sub(flushed), nodeBound)
	}
	if _, err := store.Load(ctx, live); err == nil {
		t.Error("the stopped worker wrote the lost run again")
	}
	if unsched, _, ann := getNode(t, cl.Client, "live"); !unsched || !strings.Contains(ann[runbooks.AnnotationNeedsAttention], "whose record is gone") {
		t.Errorf("live: unschedulable %v, reason %q", unsched, ann[runbooks.AnnotationNeedsAttention])
	}
	// done was cordoned by design, but after a total loss nothing
	// remembers that: it is handed to a human too.
	waitFor(t, "done escalated after the total loss", nodeBound+10*time.Second, func() bool { _, ok := tk.escalatedAt("done"); return ok })
	for _, node := range []string{"lost", "fresh", "failed", "held", "escalated"} {
		if n := len(events(t, cl.Client, node, "NodeHealerEscalated")); n != 1 {
			t.Errorf("%s: %d NodeHealerEscalated events after the total loss; want 1 (escalated once)", node, n)
		}
	}
	p4()
}
