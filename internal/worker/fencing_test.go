package worker

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/locks"
	"github.com/node-healer/node-healer/internal/queue"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/safety"
	"github.com/node-healer/node-healer/internal/testenv"
)

// racingStore lets "the previous holder" checkpoint and release the node
// lock at the moment a worker loads the run: the race a worker that loads
// before it locks loses (it resumes from a stale Next and repeats steps).
type racingStore struct {
	runbooks.Store
	mu     sync.Mutex
	onLoad func()
}

func (s *racingStore) Load(ctx context.Context, id string) (*runbooks.Run, error) {
	r, err := s.Store.Load(ctx, id)
	s.mu.Lock()
	f := s.onLoad
	s.onLoad = nil
	s.mu.Unlock()
	if f != nil {
		f()
	}
	return r, err
}

// TestWorkerLocksBeforeLoading: while worker B holds the node lease at
// step one, worker A picks the entry up. A must not act on what it read
// before it held the lock: the previous holder may save progress and
// release in between. A resumes only from the record saved under the lock,
// so no finished step runs twice.
func TestWorkerLocksBeforeLoading(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server (integration)")
	}
	rdb := testenv.NewRedisClient(t)
	s := &steps{n: map[string]int{}, blocked: make(chan struct{})}
	book := s.book()
	book.Steps[1].Do = book.Steps[0].Do // no blocking here: count only
	book.Steps[1].Name = "two"
	reg, err := runbooks.NewRegistry(book)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool := newPool(t, rdb, "a", reg)
	rs := &racingStore{Store: pool.Store}
	pool.Store = rs

	at := time.Now().UTC()
	id := runbooks.RunID("fp", at)
	req := runbooks.Request{RunID: id, Fingerprint: "fp", StartsAt: at, Node: "n1", Runbook: "three"}
	if _, err := pool.Queue.Enqueue(ctx, []runbooks.Request{req}); err != nil {
		t.Fatal(err)
	}
	// Worker B holds the node and has saved "step one started".
	lb := locks.New(rdb, "t")
	leaseB, err := lb.Acquire(ctx, "node:n1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	run := runbooks.NewRun(req, time.Now())
	run.Status, run.Fence, run.Admitted = runbooks.StatusRunning, leaseB.Fence(), true
	run.Timeline = []runbooks.Entry{{Step: "one", Start: time.Now(), Outcome: runbooks.OutcomeStarted, Fence: leaseB.Fence()}}
	if err := pool.Store.Save(ctx, run); err != nil {
		t.Fatal(err)
	}
	// The moment A reads the run, B finishes steps one and two, saves and
	// releases the lease.
	bDone := func() {
		done := *run
		done.Next = 2
		done.Timeline = []runbooks.Entry{
			{Step: "one", Outcome: runbooks.OutcomeDone, Fence: leaseB.Fence()},
			{Step: "two", Outcome: runbooks.OutcomeDone, Fence: leaseB.Fence()},
		}
		if err := rs.Store.Save(ctx, &done); err != nil {
			t.Error(err)
		}
		_ = leaseB.Release(ctx)
	}
	rs.onLoad = bDone

	ds, _, err := pool.Queue.Read(ctx, "a-0", 1, 100*time.Millisecond)
	if err != nil || len(ds) != 1 {
		t.Fatalf("read: %v %v", ds, err)
	}
	pool.handle(ctx, pool.Log, "a-0", ds[0])
	if rs.onLoad != nil {
		// A found the node locked and left the entry queued without
		// reading the run: B now finishes and releases on its own.
		rs.onLoad = nil
		bDone()
		pool.handle(ctx, pool.Log, "a-0", queue.Delivery{ID: ds[0].ID, Job: ds[0].Job, Claimed: true})
	}
	got, err := pool.Store.Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != runbooks.StatusSucceeded {
		t.Fatalf("run %s (%s)", got.Status, got.Error)
	}
	if s.count("one") != 0 || s.count("two") != 0 || s.count("three") != 1 {
		t.Errorf("steps run by A: one=%d two=%d three=%d; A must resume after B's last save (only three)", s.count("one"), s.count("two"), s.count("three"))
	}
}

// TestSlotKeptWhenLeaseLost: a run whose worker loses the node lease
// mid-step stops unfinished; it keeps its concurrency slot (so with
// max_concurrent_runs 1 no other run starts meanwhile) and it writes
// nothing more.
func TestSlotKeptWhenLeaseLost(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server (integration)")
	}
	rdb := testenv.NewRedisClient(t)
	s := &steps{n: map[string]int{}, blocked: make(chan struct{})}
	reg, err := runbooks.NewRegistry(s.book())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool := newPool(t, rdb, "a", reg)
	gate := &safety.Gate{L: safety.Limits{MaxRuns: 1, MaxControlPlaneRuns: 1, SlotTTL: time.Minute}, Redis: rdb, Prefix: "t",
		Log: pool.Log, Slots: locks.NewSlots(rdb, "t"), Rate: locks.NewRateLimiter(rdb, "t"), Window: locks.NewWindow(rdb, "t")}
	pool.Gate, pool.Executor.Gate = gate, gate

	at := time.Now().UTC()
	id := runbooks.RunID("fp", at)
	if _, err := pool.Queue.Enqueue(ctx, []runbooks.Request{{RunID: id, Fingerprint: "fp", StartsAt: at, Node: "n1", Runbook: "three"}}); err != nil {
		t.Fatal(err)
	}
	ds, _, err := pool.Queue.Read(ctx, "a-0", 1, 100*time.Millisecond)
	if err != nil || len(ds) != 1 {
		t.Fatalf("read: %v %v", ds, err)
	}
	handled := make(chan struct{})
	go func() { pool.handle(ctx, pool.Log, "a-0", ds[0]); close(handled) }()
	<-s.blocked
	before, err := pool.Store.Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	// Another replica takes the node over: the lock now holds its value.
	if err := rdb.Set(ctx, "t:lock:{node:n1}", "other:9999999999999999", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-handled:
	case <-ctx.Done():
		t.Fatal("the worker did not stop after its lease was taken over")
	}
	hs, err := gate.ActiveRuns(ctx)
	if err != nil || len(hs) != 1 || hs[0] != id+"/n1" {
		t.Fatalf("slots after the lease was lost: %v %v; the unfinished run must keep its slot", hs, err)
	}
	d, err := gate.Admit(ctx, &runbooks.Run{ID: "other", Node: "n2"})
	if err != nil || d.Allow {
		t.Fatalf("a second run was admitted while the first is unfinished (cap 1): %+v %v", d, err)
	}
	after, err := pool.Store.Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if after.Updated != before.Updated || len(after.Timeline) != len(before.Timeline) {
		t.Errorf("the run was written after its lease was lost: %+v → %+v", before.Timeline, after.Timeline)
	}
}
