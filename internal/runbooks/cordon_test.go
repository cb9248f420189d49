package runbooks

import (
	"context"
	"testing"
)

func runBook(t *testing.T, e *Executor, book, id string, dry bool) *Run {
	t.Helper()
	r := NewRun(Request{RunID: id, Runbook: book, Node: "n1", DryRun: dry}, e.now())
	if err := e.Execute(context.Background(), r, testLease(1)); err != nil {
		t.Fatal(err)
	}
	if r.Status != StatusSucceeded {
		t.Fatalf("%s: %s %s", book, r.Status, r.Error)
	}
	return r
}

func TestCordonThenUncordon(t *testing.T) {
	e, st, nodes := newExec(t, Builtin()...)
	r := runBook(t, e, "cordon", "run1", false)
	n := nodes.nodes["n1"]
	if !n.Unschedulable || n.Annotations[AnnotationCordonedBy] != "run1" || n.Annotations[AnnotationWasUnschedulable] != "false" {
		t.Fatalf("after cordon: %+v", n)
	}
	if r.Prior["unschedulable"] != "false" {
		t.Errorf("prior state %v", r.Prior)
	}
	// Running the cordon step again (a resumed run) changes nothing.
	w := nodes.writes
	r.Next, r.Status = 0, StatusRunning
	st.put(r)
	if err := e.Execute(context.Background(), r, testLease(2)); err != nil {
		t.Fatal(err)
	}
	if nodes.writes != w || r.Timeline[len(r.Timeline)-1].Outcome != OutcomeSkipped {
		t.Errorf("repeated cordon wrote again (%d→%d) or was not skipped", w, nodes.writes)
	}
	runBook(t, e, "uncordon", "run2", false)
	if n.Unschedulable || len(n.Annotations) != 0 {
		t.Fatalf("after uncordon: %+v", n)
	}
}

func TestOperatorCordonStays(t *testing.T) {
	e, _, nodes := newExec(t, Builtin()...)
	nodes.nodes["n1"].Unschedulable = true // an operator's cordon
	runBook(t, e, "cordon", "run1", false)
	if nodes.nodes["n1"].Annotations[AnnotationWasUnschedulable] != "true" {
		t.Fatalf("ownership did not record the operator's cordon: %+v", nodes.nodes["n1"])
	}
	runBook(t, e, "uncordon", "run2", false)
	n := nodes.nodes["n1"]
	if !n.Unschedulable {
		t.Fatal("uncordon removed an operator's cordon")
	}
	if len(n.Annotations) != 0 {
		t.Errorf("ownership annotations left: %v", n.Annotations)
	}
	// Without ownership, uncordon leaves the node alone.
	r := runBook(t, e, "uncordon", "run3", false)
	if !n.Unschedulable || r.Timeline[0].Outcome != OutcomeSkipped {
		t.Fatalf("uncordon of an unowned cordon: %+v %+v", n, r.Timeline)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	e, _, nodes := newExec(t, Builtin()...)
	r := runBook(t, e, "cordon", "run1", true)
	if nodes.writes != 0 || len(nodes.events) != 0 || nodes.nodes["n1"].Unschedulable {
		t.Fatalf("dry run changed the node: writes %d events %v", nodes.writes, nodes.events)
	}
	if r.Timeline[0].Outcome != OutcomeDryRun || r.Timeline[0].Detail != "would have cordoned" {
		t.Errorf("dry-run timeline %+v", r.Timeline[0])
	}
}

func TestCordonRetriesConflicts(t *testing.T) {
	e, _, nodes := newExec(t, Builtin()...)
	e.Deps.Nodes = &conflictOnce{fakeNodes: nodes}
	runBook(t, e, "cordon", "run1", false)
	if !nodes.nodes["n1"].Unschedulable {
		t.Fatal("not cordoned after a conflict")
	}
}

// conflictOnce changes the node between the read and the first write.
type conflictOnce struct {
	*fakeNodes
	done bool
}

func (c *conflictOnce) SetUnschedulable(ctx context.Context, name, rv string, u bool, ann map[string]*string) error {
	if !c.done {
		c.done = true
		c.fakeNodes.bump(c.fakeNodes.nodes[name]) // someone else wrote the node
	}
	return c.fakeNodes.SetUnschedulable(ctx, name, rv, u, ann)
}
