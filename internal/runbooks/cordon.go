package runbooks

import (
	"context"
	"errors"
	"fmt"
)

// Annotations node-healer puts on nodes it cordons, so it only ever
// undoes its own cordon (an operator's cordon stays).
const (
	AnnotationCordonedBy       = "node-healer.io/cordoned-by-run"
	AnnotationWasUnschedulable = "node-healer.io/was-unschedulable"
)

// conflictRetries bounds re-reads after an optimistic-concurrency conflict.
const conflictRetries = 3

func ptr(s string) *string { return &s }

// onConflictRetry runs a read-decide-write step again (from the read)
// when its write lost an optimistic-concurrency race.
func onConflictRetry(once StepFunc) StepFunc {
	return func(ctx context.Context, x *Exec) (Outcome, string, error) {
		for attempt := 0; ; attempt++ {
			o, d, err := once(ctx, x)
			if errors.Is(err, ErrConflict) && attempt < conflictRetries {
				continue
			}
			return o, d, err
		}
	}
}

// Cordon marks the node unschedulable and records ownership.
func Cordon(ctx context.Context, x *Exec) (Outcome, string, error) {
	return onConflictRetry(cordonOnce)(ctx, x)
}

func cordonOnce(ctx context.Context, x *Exec) (Outcome, string, error) {
	n, err := x.Nodes.GetNode(ctx, x.Run.Node)
	if err != nil {
		return "", "", err
	}
	owner := n.Annotations[AnnotationCordonedBy]
	if owner == x.Run.ID && n.Unschedulable {
		return OutcomeSkipped, "already cordoned by this run", nil
	}
	x.Run.SetPrior("unschedulable", fmt.Sprint(n.Unschedulable))
	was := "false"
	var detail string
	switch {
	case n.Unschedulable && owner != "":
		// An earlier node-healer run cordoned it: take over its ownership
		// and keep what it recorded about the operator.
		was = n.Annotations[AnnotationWasUnschedulable]
		detail = fmt.Sprintf("already cordoned by node-healer run %s; ownership moved to run %s", owner, x.Run.ID)
	case n.Unschedulable:
		was = "true"
		detail = "already cordoned by an operator; recorded so the cordon stays after the run"
	default:
		detail = "cordoned"
	}
	if x.DryRun {
		return OutcomeDryRun, "would have " + detail, nil
	}
	ann := map[string]*string{AnnotationCordonedBy: ptr(x.Run.ID), AnnotationWasUnschedulable: ptr(was)}
	if err := x.Nodes.SetUnschedulable(ctx, n.Name, n.ResourceVersion, true, ann); err != nil {
		return "", "", err
	}
	x.Audit(ctx, "cordon", detail)
	_ = x.Nodes.Event(ctx, n.Name, "Normal", "NodeHealerCordon", fmt.Sprintf("node-healer run %s (%s): %s", x.Run.ID, x.Run.Runbook, detail))
	return OutcomeDone, detail, nil
}

// Uncordon undoes a cordon node-healer owns; an operator's cordon stays.
func Uncordon(ctx context.Context, x *Exec) (Outcome, string, error) {
	return onConflictRetry(uncordonOnce)(ctx, x)
}

func uncordonOnce(ctx context.Context, x *Exec) (Outcome, string, error) {
	n, err := x.Nodes.GetNode(ctx, x.Run.Node)
	if err != nil {
		return "", "", err
	}
	owner, ok := n.Annotations[AnnotationCordonedBy]
	if !ok {
		if n.Unschedulable {
			return OutcomeSkipped, "cordoned by someone else (no node-healer ownership); left cordoned", nil
		}
		return OutcomeSkipped, "already schedulable", nil
	}
	keep := n.Annotations[AnnotationWasUnschedulable] == "true"
	detail := "uncordoned (cordon owned by node-healer run " + owner + ")"
	if keep {
		detail = "an operator had cordoned the node before run " + owner + "; left cordoned, ownership removed"
	}
	if x.DryRun {
		return OutcomeDryRun, "would have " + detail, nil
	}
	ann := map[string]*string{AnnotationCordonedBy: nil, AnnotationWasUnschedulable: nil}
	if err := x.Nodes.SetUnschedulable(ctx, n.Name, n.ResourceVersion, keep, ann); err != nil {
		return "", "", err
	}
	x.Audit(ctx, "uncordon", detail)
	_ = x.Nodes.Event(ctx, n.Name, "Normal", "NodeHealerUncordon", fmt.Sprintf("node-healer run %s (%s): %s", x.Run.ID, x.Run.Runbook, detail))
	return OutcomeDone, detail, nil
}
