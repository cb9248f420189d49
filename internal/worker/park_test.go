package worker

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/queue"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/testenv"
)

// capGate admits at most cap runs at once; a refused run is told to ask
// again in an hour (as a long deferral would be).
type capGate struct {
	cap int

	mu       sync.Mutex
	held     map[string]bool
	most     int
	deferred int
}

func (g *capGate) Admit(_ context.Context, run *runbooks.Run) (runbooks.Decision, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held[run.ID] || len(g.held) < g.cap {
		g.held[run.ID] = true
		g.most = max(g.most, len(g.held))
		return runbooks.Decision{Allow: true}, nil
	}
	g.deferred++
	return runbooks.Decision{Kind: "concurrency", Reason: "cap", RetryAt: time.Now().Add(time.Hour)}, nil
}

func (g *capGate) Destructive(context.Context, *runbooks.Run, string) (runbooks.Decision, error) {
	return runbooks.Decision{Allow: true}, nil
}
func (g *capGate) Refresh(context.Context, *runbooks.Run) error { return nil }
func (g *capGate) Done(_ context.Context, run *runbooks.Run) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.held, run.ID)
}

// parkPool is a pool of worker "w" for book whose entries are claimed
// only after an hour: a deferred run starts within a test only if parking
// picks it up.
func parkPool(t *testing.T, rdb *redis.Client, book *runbooks.Runbook) *Pool {
	t.Helper()
	reg, err := runbooks.NewRegistry(book)
	if err != nil {
		t.Fatal(err)
	}
	p := newPool(t, rdb, "w", reg)
	p.Queue = queue.New(rdb, queue.Options{Prefix: "t", ClaimAfter: time.Hour})
	return p
}

// TestDeferredRunTakesFreedSlot: with a cap of one run, a run deferred
// for the cap starts as soon as the running one ends — not after
// claim_after (an hour here, so without parking it would not start
// within the test) — and the cap is never exceeded.
func TestDeferredRunTakesFreedSlot(t *testing.T) {
	rdb, ctx, cancel := integration(t)
	release := make(chan struct{})
	started := make(chan string, 4)
	book := &runbooks.Runbook{Name: "slow", Steps: []runbooks.Step{{Name: "s", Do: func(ctx context.Context, x *runbooks.Exec) (runbooks.Outcome, string, error) {
		started <- x.Run.Node
		if x.Run.Node == "n1" {
			select {
			case <-release:
			case <-ctx.Done():
				return "", "", ctx.Err()
			}
		}
		return runbooks.OutcomeDone, "", nil
	}}}}
	p := parkPool(t, rdb, book)
	p.Count = 2
	gate := &capGate{cap: 1, held: map[string]bool{}}
	p.Gate = gate
	p.Executor.Gate = gate

	at := time.Now().UTC()
	id1, id2 := runbooks.RunID("fp1", at), runbooks.RunID("fp2", at)
	if _, err := p.Queue.Enqueue(ctx, []runbooks.Request{{RunID: id1, Fingerprint: "fp1", StartsAt: at, Node: "n1", Runbook: "slow"}}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	if n := <-started; n != "n1" {
		t.Fatalf("first run on %s", n)
	}
	if _, err := p.Queue.Enqueue(ctx, []runbooks.Request{{RunID: id2, Fingerprint: "fp2", StartsAt: at, Node: "n2", Runbook: "slow"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second run to be deferred", 10*time.Second, func() bool {
		run, err := p.Store.Load(ctx, id2)
		return err == nil && run.Status == runbooks.StatusDeferred
	})
	close(release)
	waitFor(t, "the deferred run to finish", 15*time.Second, func() bool {
		run, err := p.Store.Load(ctx, id2)
		return err == nil && run.Status == runbooks.StatusSucceeded
	})
	cancel()
	<-done
	gate.mu.Lock()
	defer gate.mu.Unlock()
	if gate.most != 1 {
		t.Errorf("%d runs admitted at once; cap 1", gate.most)
	}
	if gate.deferred < 1 {
		t.Errorf("the second run was never deferred")
	}
}

// TestDeferredRunTakesSlotFreedInOtherReplica: the run deferred in
// replica B starts when replica A's run ends (Pub/Sub), not after
// claim_after or its RetryAt (both an hour here).
func TestDeferredRunTakesSlotFreedInOtherReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server (integration)")
	}
	r := testenv.NewRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	release := make(chan struct{})
	started := make(chan string, 4)
	book := &runbooks.Runbook{Name: "slow", Steps: []runbooks.Step{{Name: "s", Do: func(ctx context.Context, x *runbooks.Exec) (runbooks.Outcome, string, error) {
		started <- x.Run.Node
		if x.Run.Node == "n1" {
			select {
			case <-release:
			case <-ctx.Done():
				return "", "", ctx.Err()
			}
		}
		return runbooks.OutcomeDone, "", nil
	}}}}
	reg, err := runbooks.NewRegistry(book)
	if err != nil {
		t.Fatal(err)
	}
	gate := &capGate{cap: 1, held: map[string]bool{}}
	pools := map[string]*Pool{}
	for _, name := range []string{"a", "b"} {
		rdb := r.Client(0)
		defer rdb.Close()
		p := newPool(t, rdb, name, reg)
		p.Queue = queue.New(rdb, queue.Options{Prefix: "t", ClaimAfter: time.Hour})
		p.Gate, p.Executor.Gate = gate, gate
		pools[name] = p
	}
	at := time.Now().UTC()
	id1, id2 := runbooks.RunID("fp1", at), runbooks.RunID("fp2", at)
	a, b := pools["a"], pools["b"]
	if _, err := a.Queue.Enqueue(ctx, []runbooks.Request{{RunID: id1, Fingerprint: "fp1", StartsAt: at, Node: "n1", Runbook: "slow"}}); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	doneA, doneB := make(chan struct{}), make(chan struct{})
	go func() { _ = a.Run(runCtx); close(doneA) }()
	if s := <-started; s != "n1" {
		t.Fatalf("first run on %s; want n1", s)
	}
	go func() { _ = b.Run(runCtx); close(doneB) }()
	time.Sleep(200 * time.Millisecond) // b subscribed
	// Only b reads now: a's single worker is busy with n1.
	if _, err := a.Queue.Enqueue(ctx, []runbooks.Request{{RunID: id2, Fingerprint: "fp2", StartsAt: at, Node: "n2", Runbook: "slow"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second run to be deferred", 10*time.Second, func() bool {
		run, err := a.Store.Load(ctx, id2)
		return err == nil && run.Status == runbooks.StatusDeferred
	})
	close(release)
	var run *runbooks.Run
	waitFor(t, "the deferred run to finish", 15*time.Second, func() bool {
		run, err = a.Store.Load(ctx, id2)
		return err == nil && run.Status == runbooks.StatusSucceeded
	})
	if w := run.Timeline[0].Worker; w != "b" {
		t.Errorf("the second run ran in replica %q; want b (a's worker was busy when it came)", w)
	}
	stop()
	<-doneA
	<-doneB
	gate.mu.Lock()
	defer gate.mu.Unlock()
	if gate.most != 1 {
		t.Errorf("%d runs admitted at once; cap 1", gate.most)
	}
}

func TestParkingOrder(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	d := func(id string) queue.Delivery { return queue.Delivery{ID: id} }
	var k parking
	k.park(d("a"), now, time.Time{})
	k.park(d("b"), now, now.Add(time.Second))
	k.park(d("c"), now.Add(-2*time.Minute), time.Time{}) // older than claim_after
	if _, ok := k.next(now, time.Minute); ok {
		t.Fatal("picked a parked run with no run ended and no RetryAt passed")
	}
	if len(k.runs) != 2 {
		t.Fatalf("%d parked; the one older than claim_after must be dropped", len(k.runs))
	}
	if w := k.wait(now, 2*time.Second); w != time.Second {
		t.Errorf("wait %s; want 1s (b's RetryAt)", w)
	}
	if p, ok := k.next(now.Add(time.Second), time.Minute); !ok || p.d.ID != "b" {
		t.Fatalf("at b's RetryAt: got %v %v; want b", p.d.ID, ok)
	}
	k.ended()
	k.ended() // one parked run left: one token
	if p, ok := k.next(now, time.Minute); !ok || p.d.ID != "a" {
		t.Fatalf("after a run ended: got %v %v; want a", p.d.ID, ok)
	}
	if _, ok := k.next(now, time.Minute); ok {
		t.Fatal("picked from an empty parking")
	}
	k.park(d("x"), now, time.Time{})
	k.park(d("y"), now, time.Time{})
	k.park(d("x"), now.Add(time.Second), time.Time{}) // parked again: moves to the back
	k.ended()
	if p, _ := k.next(now.Add(time.Second), time.Minute); p.d.ID != "y" {
		t.Errorf("oldest first: got %s; want y", p.d.ID)
	}
}

// TestDeferredRunOfResolvedAlertIsCancelled: a run deferred with nothing
// to wake it for an hour (its RetryAt and claim_after) is cancelled within
// seconds of its alert's resolved notification, and nothing of it runs; a
// deferred run whose alert still fires stays deferred.
func TestDeferredRunOfResolvedAlertIsCancelled(t *testing.T) {
	rdb, ctx, cancel := integration(t)
	ran := make(chan string, 4)
	book := &runbooks.Runbook{Name: "act", Steps: []runbooks.Step{{Name: "s", Do: func(ctx context.Context, x *runbooks.Exec) (runbooks.Outcome, string, error) {
		ran <- x.Run.Node
		return runbooks.OutcomeDone, "", nil
	}}}}
	p := parkPool(t, rdb, book)
	p.Alerts = p.Queue
	p.ResolvedCheck = 200 * time.Millisecond
	gate := &capGate{cap: 0, held: map[string]bool{}} // defers every run, RetryAt in an hour
	p.Gate = gate
	p.Executor.Gate = gate

	at := time.Now().UTC().Add(-time.Minute)
	reqs := []runbooks.Request{
		{RunID: runbooks.RunID("fp-resolves", at), Fingerprint: "fp-resolves", StartsAt: at, Node: "n1", Runbook: "act"},
		{RunID: runbooks.RunID("fp-fires", at), Fingerprint: "fp-fires", StartsAt: at, Node: "n2", Runbook: "act"},
	}
	if _, err := p.Queue.Enqueue(ctx, reqs); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	for _, rq := range reqs {
		waitFor(t, "run "+rq.Node+" to be deferred", 10*time.Second, func() bool {
			run, err := p.Store.Load(ctx, rq.RunID)
			return err == nil && run.Status == runbooks.StatusDeferred
		})
	}
	resolvedAt := time.Now()
	if err := p.Queue.RecordResolved(ctx, map[string]time.Time{"fp-resolves": resolvedAt.UTC()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deferred run of the resolved alert to be cancelled", 10*time.Second, func() bool {
		run, err := p.Store.Load(ctx, reqs[0].RunID)
		return err == nil && run.Status == runbooks.StatusCancelled
	})
	t.Logf("cancelled %s after the resolved notification", time.Since(resolvedAt).Round(10*time.Millisecond))
	time.Sleep(time.Second)
	if run, err := p.Store.Load(ctx, reqs[1].RunID); err != nil || run.Status != runbooks.StatusDeferred {
		t.Errorf("the run of the alert still firing: %v %v, want deferred", run.Status, err)
	}
	cancel()
	<-done
	select {
	case n := <-ran:
		t.Errorf("a step ran on %s", n)
	default:
	}
}
