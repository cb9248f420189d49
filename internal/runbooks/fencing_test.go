package runbooks

import (
	"context"
	"errors"
	"testing"
)

// A worker whose lease is lost while a step runs (frozen past its TTL)
// writes nothing afterwards and starts no further step.
func TestExecutorWritesNothingAfterLeaseLost(t *testing.T) {
	c := &counter{n: map[string]int{}}
	lease := testLease(1)
	book := &Runbook{Name: "three", Steps: []Step{
		c.step("one", nil),
		c.step("two", func(context.Context) error { lease.lost.Store(true); return nil }),
		c.step("three", nil),
	}}
	e, st, _ := newExec(t, book)
	run := NewRun(Request{RunID: "r1", Runbook: "three", Node: "n1"}, e.now())
	err := e.Execute(context.Background(), run, lease)
	if !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("err %v, want ErrLeaseLost", err)
	}
	saved, _ := st.Load(context.Background(), "r1")
	if c.n["three"] != 0 {
		t.Errorf("step three ran after the lease was lost")
	}
	if last := saved.Timeline[len(saved.Timeline)-1]; saved.Next != 1 || last.Step != "two" || last.Outcome != OutcomeStarted {
		t.Errorf("stored record changed after the lease was lost: next %d, last entry %+v", saved.Next, last)
	}
}

// A replica that wakes after another took the node over and finished the
// run is refused by the store (fence compare-and-set): the final record
// stays as the new holder wrote it, and the stale worker stops.
func TestExecutorStaleHolderRefused(t *testing.T) {
	c := &counter{n: map[string]int{}}
	var st *memStore
	var newer *Run
	book := &Runbook{Name: "three", Steps: []Step{
		c.step("one", nil),
		c.step("two", func(context.Context) error {
			// Meanwhile, fence 2 resumed the run and finished it.
			done := *newer
			done.Status, done.Next, done.Fence = StatusSucceeded, 3, 2
			st.put(&done)
			return nil
		}),
		c.step("three", nil),
	}}
	e, s, _ := newExec(t, book)
	st = s
	run := NewRun(Request{RunID: "r1", Runbook: "three", Node: "n1"}, e.now())
	newer = run
	err := e.Execute(context.Background(), run, testLease(1))
	if !errors.Is(err, ErrLeaseLost) || !errors.Is(err, ErrStaleWrite) {
		t.Fatalf("err %v, want ErrLeaseLost wrapping ErrStaleWrite", err)
	}
	if c.n["three"] != 0 {
		t.Error("the stale worker went on to step three")
	}
	saved, _ := st.Load(context.Background(), "r1")
	if saved.Status != StatusSucceeded || saved.Fence != 2 || st.refused != 1 {
		t.Errorf("stored %s fence %d, refused %d: the newer holder's final record must stay", saved.Status, saved.Fence, st.refused)
	}
}

// The power-cycle decision is committed, then the lease is found lost
// just before the BMC call: no reset is sent, and the run stops.
func TestResetNotSentWhenLeaseLostAfterDecision(t *testing.T) {
	s := &sim{ready: "True", power: StateOn, bootID: "boot-0", softWorks: false}
	e, _ := newSimExec(t, s)
	lease := testLease(1)
	e.Store.(*memStore).onSave = func(r *Run) {
		if r.Prior[priorCycleSent] != "" {
			lease.lost.Store(true) // frozen right after the decision was saved
		}
	}
	r := NewRun(Request{RunID: "r1", Runbook: "reboot", Node: "n1", Params: fastParams}, e.now())
	err := e.Execute(context.Background(), r, lease)
	if !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("err %v, want ErrLeaseLost", err)
	}
	if got := s.resetKinds(); got != "[soft]" {
		t.Fatalf("resets %s: no hard reset may be sent once the lease is lost", got)
	}
}

// A reset decision that no Redis replica acknowledged is not acted on: it
// is forgotten again and the run stays resumable; once replication is
// back the run decides again and sends each reset exactly once.
func TestResetDecisionNotActedOnUntilReplicated(t *testing.T) {
	s := &sim{ready: "True", power: StateOn, bootID: "boot-0", softWorks: false}
	e, _ := newSimExec(t, s)
	st := e.Store.(*memStore)
	st.notReplicated.Store(true)
	r := NewRun(Request{RunID: "r1", Runbook: "reboot", Node: "n1", Params: fastParams}, e.now())
	err := e.Execute(context.Background(), r, testLease(1))
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("err %v, want ErrUnavailable wrapping ErrNotReplicated", err)
	}
	if got := s.resetKinds(); got != "[]" {
		t.Fatalf("resets %s: nothing may be sent on a decision a failover could lose", got)
	}
	saved, _ := st.Load(context.Background(), "r1")
	if saved.Prior[priorSoftSent] != "" || saved.Status.Final() {
		t.Fatalf("stored: prior %v status %s; the decision must be forgotten and the run resumable", saved.Prior, saved.Status)
	}
	st.notReplicated.Store(false)
	if err := e.Execute(context.Background(), saved, testLease(2)); err != nil {
		t.Fatal(err)
	}
	if got := s.resetKinds(); saved.Status != StatusSucceeded || got != "[soft hard]" {
		t.Fatalf("after replication is back: %s, resets %s", saved.Status, got)
	}
}
