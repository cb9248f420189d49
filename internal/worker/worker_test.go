package worker

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/locks"
	"github.com/node-healer/node-healer/internal/queue"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/runstore"
	"github.com/node-healer/node-healer/internal/testenv"
)

// noEvents satisfies runbooks.NodeOps for runbooks that do not touch the
// cluster (the steps here only count their executions).
type noEvents struct{ runbooks.NodeOps }

func (noEvents) Event(context.Context, string, string, string, string) error { return nil }

// steps counts executions; "block" blocks the first time until its ctx ends.
type steps struct {
	mu      sync.Mutex
	n       map[string]int
	blocked chan struct{}
}

func (s *steps) book() *runbooks.Runbook {
	mk := func(name string, block bool) runbooks.Step {
		return runbooks.Step{Name: name, Do: func(ctx context.Context, x *runbooks.Exec) (runbooks.Outcome, string, error) {
			s.mu.Lock()
			s.n[name]++
			first := s.n[name] == 1
			s.mu.Unlock()
			if block && first {
				close(s.blocked)
				<-ctx.Done()
				return "", "", ctx.Err()
			}
			return runbooks.OutcomeDone, "ok", nil
		}}
	}
	return &runbooks.Runbook{Name: "three", Steps: []runbooks.Step{mk("one", false), mk("two", true), mk("three", false)}}
}

func (s *steps) count(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[name]
}

func newPool(t *testing.T, rdb redis.UniversalClient, name string, reg *runbooks.Registry) *Pool {
	st := runstore.New(rdb, "t", time.Hour)
	log := slog.New(slog.DiscardHandler)
	return &Pool{
		Queue: queue.New(rdb, queue.Options{Prefix: "t", ClaimAfter: 600 * time.Millisecond}), Locker: locks.New(rdb, "t"),
		Store: st, Name: name, Count: 1, LockTTL: time.Second, Block: 50 * time.Millisecond, Log: log,
		Executor: &runbooks.Executor{Registry: reg, Store: st, Deps: runbooks.Deps{Nodes: noEvents{}}, Log: log, Worker: name},
	}
}

// integration is a real redis-server's client and a context of 30 s for
// an integration test (skipped with -short).
func integration(t *testing.T) (*redis.Client, context.Context, context.CancelFunc) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs redis-server (integration)")
	}
	rdb := testenv.NewRedis(t).Client(0)
	t.Cleanup(func() { rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return rdb, ctx, cancel
}

func waitFor(t *testing.T, what string, timeout time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStoppedWorkerRunIsResumed: worker A stops in the middle of step two
// (here: its Redis connection dies, as in a crash or partition, so it can
// neither renew, save nor release). Worker B claims the entry once it is
// idle and the lease has expired, resumes at step two and finishes; step
// one does not run again.
func TestStoppedWorkerRunIsResumed(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server (integration)")
	}
	r := testenv.NewRedis(t)
	s := &steps{n: map[string]int{}, blocked: make(chan struct{})}
	reg, err := runbooks.NewRegistry(s.book())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	rdbA := r.Client(0)
	poolA := newPool(t, rdbA, "a", reg)
	rdbB := r.Client(0)
	defer rdbB.Close()
	poolB := newPool(t, rdbB, "b", reg)

	at := time.Now().UTC()
	id := runbooks.RunID("fp", at)
	if _, err := poolA.Queue.Enqueue(ctx, []runbooks.Request{{RunID: id, Fingerprint: "fp", StartsAt: at, Node: "n1", Runbook: "three"}}); err != nil {
		t.Fatal(err)
	}
	ctxA, stopA := context.WithCancel(ctx)
	doneA := make(chan struct{})
	go func() { _ = poolA.Run(ctxA); close(doneA) }()
	select {
	case <-s.blocked:
	case <-ctx.Done():
		t.Fatal("worker A never reached step two")
	}
	rdbA.Close() // A's connection dies mid-step
	stopA()
	<-doneA

	doneB := make(chan struct{})
	ctxB, stopB := context.WithCancel(ctx)
	go func() { _ = poolB.Run(ctxB); close(doneB) }()
	store := runstore.New(rdbB, "t", time.Hour)
	var run *runbooks.Run
	waitFor(t, "worker B to finish the run", 20*time.Second, func() bool {
		run, err = store.Load(ctx, id)
		return err == nil && run.Status.Final()
	})
	stopB()
	<-doneB
	if run.Status != runbooks.StatusSucceeded {
		t.Fatalf("status %s: %s", run.Status, run.Error)
	}
	if s.count("one") != 1 || s.count("two") != 2 || s.count("three") != 1 {
		t.Fatalf("executions one=%d two=%d three=%d; finished steps must not repeat", s.count("one"), s.count("two"), s.count("three"))
	}
	var workers []string
	for _, e := range run.Timeline {
		workers = append(workers, e.Step+"@"+e.Worker+":"+string(e.Outcome))
	}
	want := []string{"one@a:done", "two@a:interrupted", "two@b:done", "three@b:done"}
	if len(workers) != len(want) {
		t.Fatalf("timeline %v, want %v", workers, want)
	}
	for i := range want {
		if workers[i] != want[i] {
			t.Fatalf("timeline %v, want %v", workers, want)
		}
	}
	if run.Timeline[2].Fence <= run.Timeline[0].Fence {
		t.Errorf("fence did not increase across holders: %d then %d", run.Timeline[0].Fence, run.Timeline[2].Fence)
	}
	lag, pending, err := poolB.Queue.Backlog(ctx)
	if err != nil || lag != 0 || pending != 0 {
		t.Errorf("entry not acknowledged: lag %d pending %d %v", lag, pending, err)
	}
}

// TestBusyNodeWaits: a second run for a node whose lease is held stays
// queued and starts once the lease is free.
func TestBusyNodeWaits(t *testing.T) {
	rdb, ctx, _ := integration(t)
	quick := &runbooks.Runbook{Name: "quick", Steps: []runbooks.Step{{Name: "s", Do: func(context.Context, *runbooks.Exec) (runbooks.Outcome, string, error) {
		return runbooks.OutcomeDone, "", nil
	}}}}
	reg, _ := runbooks.NewRegistry(quick)
	p := newPool(t, rdb, "w", reg)
	held, err := p.Locker.Acquire(ctx, "node:n1", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC()
	id := runbooks.RunID("fp2", at)
	if _, err := p.Queue.Enqueue(ctx, []runbooks.Request{{RunID: id, Fingerprint: "fp2", StartsAt: at, Node: "n1", Runbook: "quick"}}); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.Run(ctx) }()
	time.Sleep(400 * time.Millisecond)
	if _, err := p.Store.Load(ctx, id); err == nil {
		t.Fatal("run started while the node was locked")
	}
	if err := held.Release(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the queued run to finish", 10*time.Second, func() bool {
		run, err := p.Store.Load(ctx, id)
		return err == nil && run.Status == runbooks.StatusSucceeded
	})
}
