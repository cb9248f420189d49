package runbooks

import (
	"context"
	"fmt"
	"log/slog"
)

// Escalation marks node-healer puts on a node it hands to a human.
const (
	AnnotationNeedsAttention = "node-healer.io/needs-attention"
	AnnotationEscalatedBy    = "node-healer.io/escalated-by-run"
	LabelNeedsAttention      = "node-healer.io/needs-attention"
)

// EscalationError stops a run and hands the node to a human.
type EscalationError struct{ Reason string }

func (e *EscalationError) Error() string { return "escalated: " + e.Reason }

// Escalate returns an error that escalates the run with a reason.
func Escalate(format string, a ...any) error {
	return &EscalationError{Reason: fmt.Sprintf(format, a...)}
}

// escalate records the hand-over: run status, node annotation and label,
// a Warning Event, a log line and the run metric. The node keeps
// whatever state the run left (cordoned, usually): a human decides.
func (e *Executor) escalate(ctx context.Context, log *slog.Logger, run *Run, step, reason string) {
	run.Status, run.Error = StatusEscalated, fmt.Sprintf("step %s: %s", step, reason)
	msg := fmt.Sprintf("node-healer run %s (%s) needs a human: step %s: %s", run.ID, run.Runbook, step, reason)
	log.Warn("run escalated to a human", "step", step, "reason", reason)
	if !run.DryRun {
		if w := e.Deps.Writer; w != nil {
			short := reason
			if len(short) > 250 {
				short = short[:250]
			}
			err := w.Annotate(ctx, run.Node,
				map[string]*string{AnnotationNeedsAttention: ptr(short), AnnotationEscalatedBy: ptr(run.ID)},
				map[string]*string{LabelNeedsAttention: ptr("true")})
			if err != nil {
				log.Error("could not mark the node for attention", "err", err)
			} else {
				log.LogAttrs(ctx, slog.LevelInfo, "audit", slog.Bool("audit", true), slog.String("action", "escalate"),
					slog.String("node", run.Node), slog.String("run", run.ID), slog.String("step", step), slog.String("detail", reason))
			}
		}
		if e.Deps.Nodes != nil {
			_ = e.Deps.Nodes.Event(ctx, run.Node, "Warning", "NodeHealerEscalated", msg)
		}
	}
	e.finish(ctx, log, run)
}

// EscalateRun hands a run to a human outside of a step (e.g. the safety
// gate refused it for good) and saves it, under the run's node lease.
func (e *Executor) EscalateRun(ctx context.Context, run *Run, lease Lease, step, reason string) error {
	ctx = WithFence(context.WithValue(ctx, leaseKey{}, lease), lease.Fence())
	e.escalate(ctx, e.Log.With("run", run.ID, "runbook", run.Runbook, "node", run.Node), run, step, reason)
	return e.save(ctx, run)
}
