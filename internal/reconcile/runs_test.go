package reconcile_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/queue"
	"github.com/node-healer/node-healer/internal/reconcile"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/runstore"
	"github.com/node-healer/node-healer/internal/testenv"
)

// interrupted leaves a run of "three" stopped in step two, not final,
// with its entry pending and no worker on it: what a worker leaves when
// it stops (shutdown, lost lease) before a crash of Redis's state.
func interrupted(t *testing.T, s *steps, p func() (stop func()), q *queue.Queue, node string) string {
	t.Helper()
	id := enqueue(t, q, "fp-"+node, node, "three")
	stop := p()
	select {
	case <-s.blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("the worker never reached step two")
	}
	stop()
	return id
}

// TestLostEntryIsRequeuedAndResumed: a run stopped in step two whose
// stream entry is then lost — deleted, acknowledged by hand, or the whole
// stream with its consumer group gone — is re-queued within
// interval + grace of the loss, and a worker resumes it at step two (step
// one does not run again).
func TestLostEntryIsRequeuedAndResumed(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server (integration)")
	}
	losses := map[string]func(ctx context.Context, rdb *redis.Client, stream, entry string) error{
		"entry deleted": func(ctx context.Context, rdb *redis.Client, stream, entry string) error {
			return rdb.XDel(ctx, stream, entry).Err()
		},
		"acknowledged by hand": func(ctx context.Context, rdb *redis.Client, stream, entry string) error {
			return rdb.XAck(ctx, stream, "workers", entry).Err()
		},
		"stream and group lost": func(ctx context.Context, rdb *redis.Client, stream, _ string) error {
			return rdb.Del(ctx, stream).Err()
		},
	}
	for name, lose := range losses {
		t.Run(name, func(t *testing.T) {
			rdb := testenv.NewRedisClient(t)
			ctx := context.Background()
			s := newSteps()
			reg := s.registry(t)
			rec, ts := newReconciler(t, rdb)
			q := ts.Queue
			id := interrupted(t, s, func() func() { return runPool(t, newPool(t, rdb, "a", reg, nil)) }, q, "n1")

			refs, err := q.Refs(ctx)
			if err != nil || !refs.Has(id) {
				t.Fatalf("before the loss the run's entry must be live: %+v %v", refs, err)
			}
			entry := refs.Live[id][0].Entry
			if err := lose(ctx, rdb, q.Stream(), entry); err != nil {
				t.Fatal(err)
			}
			lost := time.Now()
			start(t, rec)
			runPool(t, newPool(t, rdb, "b", reg, nil))

			waitFor(t, "the run to be re-queued", bound+5*time.Second, func() bool { _, ok := ts.requeuedAt(id); return ok })
			at, _ := ts.requeuedAt(id)
			took := at.Sub(lost)
			t.Logf("loss → re-queue: %s (bound interval %s + grace %s = %s)", took.Round(time.Millisecond), interval, grace, bound)
			if took > bound+slack {
				t.Errorf("re-queued %s after the loss; bound is %s", took, bound)
			}
			store := runstore.New(rdb, prefix, time.Hour)
			var run *runbooks.Run
			waitFor(t, "a worker to finish the run", 15*time.Second, func() bool {
				run, err = store.Load(ctx, id)
				return err == nil && run.Status.Final()
			})
			if run.Status != runbooks.StatusSucceeded {
				t.Fatalf("status %s: %s", run.Status, run.Error)
			}
			if s.count("one") != 1 || s.count("two") != 2 || s.count("three") != 1 {
				t.Fatalf("executions one=%d two=%d three=%d; a resumed run must not repeat finished steps", s.count("one"), s.count("two"), s.count("three"))
			}
			if got := orphans(rec, reconcile.KindRunRequeued); got != 1 {
				t.Errorf("node_healer_orphans_total{kind=run_requeued} = %v; want 1", got)
			}
			// Finished: acknowledged and deleted, nothing left to re-queue.
			waitFor(t, "the stream to be empty", 5*time.Second, func() bool { return rdb.XLen(ctx, q.Stream()).Val() == 0 })
			time.Sleep(bound)
			if got := orphans(rec, reconcile.KindRunRequeued); got != 1 {
				t.Errorf("a finished run was re-queued again: orphans %v", got)
			}
		})
	}
}

// TestHeldRunIsNotTouched: a run a live worker holds (it is in step two,
// renewing the node lease) whose stream entry is lost is not re-queued
// for as long as the worker holds it; once that worker stops, it is
// re-queued within interval + grace and another worker finishes it.
func TestHeldRunIsNotTouched(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server (integration)")
	}
	rdb := testenv.NewRedisClient(t)
	ctx := context.Background()
	s := newSteps()
	reg := s.registry(t)
	rec, ts := newReconciler(t, rdb)
	q := ts.Queue
	id := enqueue(t, q, "fp-held", "n1", "three")
	stopA := runPool(t, newPool(t, rdb, "a", reg, nil))
	<-s.blocked
	refs, _ := q.Refs(ctx)
	if err := rdb.XDel(ctx, q.Stream(), refs.Live[id][0].Entry).Err(); err != nil {
		t.Fatal(err)
	}
	start(t, rec)
	time.Sleep(3 * bound)
	if _, ok := ts.requeuedAt(id); ok || rdb.XLen(ctx, q.Stream()).Val() != 0 {
		t.Fatal("a run held by a live worker was re-queued")
	}
	if got := orphans(rec, reconcile.KindRunRequeued); got != 0 {
		t.Fatalf("orphans %v while the worker holds the run", got)
	}
	stopA()
	stopped := time.Now()
	runPool(t, newPool(t, rdb, "b", reg, nil))
	waitFor(t, "the run to be re-queued", bound+5*time.Second, func() bool { _, ok := ts.requeuedAt(id); return ok })
	at, _ := ts.requeuedAt(id)
	t.Logf("worker stop → re-queue: %s (bound %s)", at.Sub(stopped).Round(time.Millisecond), bound)
	if at.Sub(stopped) > bound+slack {
		t.Errorf("re-queued %s after the worker stopped; bound is %s", at.Sub(stopped), bound)
	}
	store := runstore.New(rdb, prefix, time.Hour)
	waitFor(t, "worker b to finish the run", 15*time.Second, func() bool {
		run, err := store.Load(ctx, id)
		return err == nil && run.Status == runbooks.StatusSucceeded
	})
	if s.count("one") != 1 || s.count("three") != 1 {
		t.Fatalf("executions one=%d three=%d; want 1 each", s.count("one"), s.count("three"))
	}
}

// deferAll is a safety gate that defers every run for an hour.
type deferAll struct{}

func (deferAll) Admit(context.Context, *runbooks.Run) (runbooks.Decision, error) {
	return runbooks.Decision{Kind: "paused", Reason: "paused for the test", RetryAt: time.Now().Add(time.Hour)}, nil
}
func (deferAll) Destructive(context.Context, *runbooks.Run, string) (runbooks.Decision, error) {
	return runbooks.Decision{Allow: true}, nil
}
func (deferAll) Refresh(context.Context, *runbooks.Run) error { return nil }
func (deferAll) Done(context.Context, *runbooks.Run)          {}

// TestWaitingRunsAreNotDuplicated: a deferred run (its entry pending,
// its record not updated for longer than the grace period) and a run
// whose entry no worker has read yet are each left with their one entry.
func TestWaitingRunsAreNotDuplicated(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server (integration)")
	}
	rdb := testenv.NewRedisClient(t)
	ctx := context.Background()
	s := newSteps()
	reg := s.registry(t)
	rec, ts := newReconciler(t, rdb)
	q := ts.Queue
	store := runstore.New(rdb, prefix, time.Hour)

	deferred := enqueue(t, q, "fp-deferred", "n1", "three")
	stop := runPool(t, newPool(t, rdb, "a", reg, deferAll{}))
	waitFor(t, "the run to be deferred", 5*time.Second, func() bool {
		run, err := store.Load(ctx, deferred)
		return err == nil && run.Status == runbooks.StatusDeferred
	})
	stop() // nobody picks it up again for claim_after (3s): its record goes stale

	// A run saved non-final whose entry nobody has read yet.
	unread := enqueue(t, q, "fp-unread", "n2", "three")
	old := time.Now().Add(-time.Hour)
	if err := store.Save(ctx, &runbooks.Run{ID: unread, Runbook: "three", Node: "n2", Status: runbooks.StatusPending, Created: old, Updated: old}); err != nil {
		t.Fatal(err)
	}

	start(t, rec)
	time.Sleep(2 * bound)
	if n := rdb.XLen(ctx, q.Stream()).Val(); n != 2 {
		t.Fatalf("stream has %d entries; want the 2 original ones", n)
	}
	for _, id := range []string{deferred, unread} {
		if _, ok := ts.requeuedAt(id); ok {
			t.Errorf("run %s was re-queued though an entry leads to it", id)
		}
	}
	if got := orphans(rec, reconcile.KindRunRequeued); got != 0 {
		t.Errorf("orphans %v; want 0", got)
	}
	if run, _ := store.Load(ctx, deferred); run.Status != runbooks.StatusDeferred {
		t.Errorf("deferred run is now %s", run.Status)
	}
}
