package runbooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"
)

type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) step(name string, do func(context.Context) error) Step {
	return Step{Name: name, Do: func(ctx context.Context, x *Exec) (Outcome, string, error) {
		c.mu.Lock()
		c.n[name]++
		c.mu.Unlock()
		if do != nil {
			if err := do(ctx); err != nil {
				return "", "", err
			}
		}
		return OutcomeDone, name + " ok", nil
	}}
}

func newExec(t *testing.T, books ...*Runbook) (*Executor, *memStore, *fakeNodes) {
	t.Helper()
	reg, err := NewRegistry(books...)
	if err != nil {
		t.Fatal(err)
	}
	st, nodes := newMemStore(), newFakeNodes("n1")
	return &Executor{Registry: reg, Store: st, Deps: Deps{Nodes: nodes, Writer: nodes, Poll: time.Millisecond}, Log: slog.New(slog.DiscardHandler), Worker: "w"}, st, nodes
}

func TestExecutorResumesWithoutRepeatingSteps(t *testing.T) {
	c := &counter{n: map[string]int{}}
	ctx1, kill := context.WithCancelCause(context.Background())
	first := true
	book := &Runbook{Name: "three", Steps: []Step{
		c.step("one", nil),
		c.step("two", func(ctx context.Context) error {
			if first {
				first = false
				kill(ErrLeaseLost) // the worker loses its lease in the middle of step two
				return ctx.Err()
			}
			return nil
		}),
		c.step("three", nil),
	}}
	e, st, _ := newExec(t, book)
	run := NewRun(Request{RunID: "r1", Runbook: "three", Node: "n1"}, e.now())
	err := e.Execute(ctx1, run, testLease(1))
	if !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("first attempt: %v, want ErrLeaseLost", err)
	}
	saved, _ := st.Load(context.Background(), "r1")
	if saved.Status != StatusRunning || saved.Next != 1 {
		t.Fatalf("saved state after interruption: status %s next %d", saved.Status, saved.Next)
	}
	// Another worker picks up the saved state.
	e.Worker = "w2"
	if err := e.Execute(context.Background(), saved, testLease(2)); err != nil {
		t.Fatal(err)
	}
	if saved.Status != StatusSucceeded {
		t.Fatalf("status %s: %s", saved.Status, saved.Error)
	}
	if c.n["one"] != 1 || c.n["two"] != 2 || c.n["three"] != 1 {
		t.Errorf("step executions %v: finished steps must not repeat", c.n)
	}
	var got []string
	for _, en := range saved.Timeline {
		got = append(got, fmt.Sprintf("%s:%s:%d", en.Step, en.Outcome, en.Fence))
	}
	want := "[one:done:1 two:interrupted:1 two:done:2 three:done:2]"
	if fmt.Sprint(got) != want {
		t.Errorf("timeline %v, want %s", got, want)
	}
	if saved.Attempts != 2 {
		t.Errorf("attempts %d", saved.Attempts)
	}
}

func TestExecutorFailsRunOnStepError(t *testing.T) {
	c := &counter{n: map[string]int{}}
	book := &Runbook{Name: "b", Steps: []Step{c.step("one", func(context.Context) error { return errors.New("boom") }), c.step("two", nil)}}
	e, _, nodes := newExec(t, book)
	run := NewRun(Request{RunID: "r", Runbook: "b", Node: "n1"}, e.now())
	if err := e.Execute(context.Background(), run, testLease(1)); err != nil {
		t.Fatal(err)
	}
	if run.Status != StatusFailed || c.n["two"] != 0 || run.Error == "" {
		t.Fatalf("status %s err %q steps %v", run.Status, run.Error, c.n)
	}
	if len(nodes.events) != 1 || nodes.events[0] != "n1 Warning NodeHealerStepFailed" {
		t.Errorf("events %v", nodes.events)
	}
}

func TestExecutorKeepsRunOnUnavailable(t *testing.T) {
	fail := true
	c := &counter{n: map[string]int{}}
	book := &Runbook{Name: "b", Steps: []Step{c.step("one", func(context.Context) error {
		if fail {
			return fmt.Errorf("%w: connection refused", ErrUnavailable)
		}
		return nil
	})}}
	e, _, _ := newExec(t, book)
	run := NewRun(Request{RunID: "r", Runbook: "b", Node: "n1"}, e.now())
	if err := e.Execute(context.Background(), run, testLease(1)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err %v", err)
	}
	if run.Status != StatusRunning || run.Next != 0 {
		t.Fatalf("status %s next %d: an unreachable API server must not fail the run", run.Status, run.Next)
	}
	fail = false
	if err := e.Execute(context.Background(), run, testLease(2)); err != nil || run.Status != StatusSucceeded {
		t.Fatalf("resume: %v %s", err, run.Status)
	}
}

func TestExecutorUnknownRunbook(t *testing.T) {
	e, _, _ := newExec(t, &Runbook{Name: "b", Steps: []Step{{Name: "s", Do: Cordon}}})
	run := NewRun(Request{RunID: "r", Runbook: "nope", Node: "n1"}, e.now())
	if err := e.Execute(context.Background(), run, testLease(1)); err != nil || run.Status != StatusFailed {
		t.Fatalf("%v %s", err, run.Status)
	}
}

func TestRegistryRejectsBadRunbooks(t *testing.T) {
	for _, b := range []*Runbook{
		{Name: "", Steps: []Step{{Name: "s", Do: Cordon}}},
		{Name: "x"},
		{Name: "x", Steps: []Step{{Name: "s", Do: Cordon}, {Name: "s", Do: Cordon}}},
		{Name: "x", Steps: []Step{{Name: "s"}}},
	} {
		if _, err := NewRegistry(b); err == nil {
			t.Errorf("accepted %+v", b)
		}
	}
	if _, err := NewRegistry(Builtin()[0], Builtin()[0]); err == nil {
		t.Error("accepted a duplicate name")
	}
}
