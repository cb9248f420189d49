package reconcile_test

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/locks"
	"github.com/node-healer/node-healer/internal/queue"
	"github.com/node-healer/node-healer/internal/reconcile"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/runstore"
	"github.com/node-healer/node-healer/internal/worker"
)

// Timings of the tests: the bound is interval + grace.
const (
	interval = 200 * time.Millisecond
	grace    = 800 * time.Millisecond
	bound    = interval + grace
	// slack is what a loaded machine may add to a pass (Redis round
	// trips, API server writes); measured latencies are logged.
	slack = 500 * time.Millisecond
)

const prefix = "t"

func testLog(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// timedStream records when the reconciler re-queued each run.
type timedStream struct {
	*queue.Queue
	mu sync.Mutex
	at map[string]time.Time
}

func (s *timedStream) Requeue(ctx context.Context, job queue.Job, dead ...string) (string, error) {
	id, err := s.Queue.Requeue(ctx, job, dead...)
	if err == nil {
		s.mu.Lock()
		s.at[job.RunID] = time.Now()
		s.mu.Unlock()
	}
	return id, err
}

func (s *timedStream) requeuedAt(id string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.at[id]
	return t, ok
}

func newReconciler(t *testing.T, rdb redis.UniversalClient) (*reconcile.Reconciler, *timedStream) {
	ts := &timedStream{Queue: queue.New(rdb, queue.Options{Prefix: prefix}), at: map[string]time.Time{}}
	return &reconcile.Reconciler{
		Runs: runstore.New(rdb, prefix, time.Hour), Stream: ts, Locker: locks.New(rdb, prefix),
		Redis: rdb, Prefix: prefix, Interval: interval, Grace: grace, LockTTL: 2 * time.Second,
		Log: testLog(t), Metrics: reconcile.NewMetrics(prometheus.NewRegistry()),
	}, ts
}

// start runs the reconciler until the test ends.
func start(t *testing.T, r *reconcile.Reconciler) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func orphans(r *reconcile.Reconciler, kind string) float64 {
	return testutil.ToFloat64(r.Metrics.Orphans.WithLabelValues(kind))
}

// steps is a runbook whose step "two" blocks the first time until its
// context ends (a worker stopped mid-step).
type steps struct {
	mu      sync.Mutex
	n       map[string]int
	blocked chan struct{}
}

func newSteps() *steps { return &steps{n: map[string]int{}, blocked: make(chan struct{})} }

func (s *steps) registry(t *testing.T) *runbooks.Registry {
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
	reg, err := runbooks.NewRegistry(&runbooks.Runbook{Name: "three", Steps: []runbooks.Step{mk("one", false), mk("two", true), mk("three", false)}})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func (s *steps) count(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[name]
}

// noEvents satisfies runbooks.NodeOps for runbooks that do not touch the
// cluster.
type noEvents struct{ runbooks.NodeOps }

func (noEvents) Event(context.Context, string, string, string, string) error { return nil }

func newPool(t *testing.T, rdb redis.UniversalClient, name string, reg *runbooks.Registry, gate runbooks.Gate) *worker.Pool {
	st := runstore.New(rdb, prefix, time.Hour)
	log := testLog(t).With("worker", name)
	p := &worker.Pool{
		Queue: queue.New(rdb, queue.Options{Prefix: prefix, ClaimAfter: 3 * time.Second}), Locker: locks.New(rdb, prefix),
		Store: st, Name: name, Count: 1, LockTTL: time.Second, Block: 50 * time.Millisecond, Log: log,
		Executor: &runbooks.Executor{Registry: reg, Store: st, Deps: runbooks.Deps{Nodes: noEvents{}}, Log: log, Worker: name},
	}
	if gate != nil {
		p.Gate = gate
	}
	return p
}

// runPool runs p until the returned stop is called (or the test ends).
func runPool(t *testing.T, p *worker.Pool) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func waitFor(t *testing.T, what string, timeout time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func enqueue(t *testing.T, q *queue.Queue, fp, node, book string) string {
	t.Helper()
	at := time.Now().UTC()
	id := runbooks.RunID(fp, at)
	if _, err := q.Enqueue(context.Background(), []runbooks.Request{{RunID: id, Fingerprint: fp, StartsAt: at, Node: node, Runbook: book, Enqueued: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	return id
}
