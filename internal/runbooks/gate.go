package runbooks

import (
	"context"
	"fmt"
	"time"
)

// Decision is a safety gate's answer.
type Decision struct {
	Allow bool
	// Kind is a bounded reason label (paused, silenced, excluded, breaker,
	// concurrency, control_plane, quorum, rate, window, settle,
	// alertmanager_unreachable, node_cap…); used in metrics.
	Kind string
	// Reason is the human sentence for logs, the run and Events.
	Reason string
	// RetryAt is when asking again makes sense (zero: soon).
	RetryAt time.Time
	// Escalate: never allowed without a human (e.g. per-node cap reached).
	Escalate bool
	// Cancel: the run should stop without acting (its alert resolved).
	Cancel bool
}

// errCancelled stops a run whose reason to act went away.
type errCancelled struct{ reason string }

func (e *errCancelled) Error() string { return "cancelled: " + e.reason }

// Gate is the cluster-wide safety check (internal/safety implements it).
type Gate interface {
	// Admit is asked before a run's first step and whenever a deferred
	// run is picked up again. An allowed run holds whatever the gate
	// reserved for it (a concurrency slot) until Done.
	Admit(ctx context.Context, run *Run) (Decision, error)
	// Destructive is asked before every destructive step.
	Destructive(ctx context.Context, run *Run, step string) (Decision, error)
	// Refresh keeps the run's reservations alive while it goes on.
	Refresh(ctx context.Context, run *Run) error
	// Done releases the run's reservations (final or stopped).
	Done(ctx context.Context, run *Run)
}

// Hold is why a run is waiting, persisted with it.
type Hold struct {
	Kind    string    `json:"kind"`
	Reason  string    `json:"reason"`
	Since   time.Time `json:"since"`
	RetryAt time.Time `json:"retryAt,omitzero"`
	Step    string    `json:"step,omitempty"` // the destructive step it waits before
}

// holdPoll is how often a held step asks the gate again.
const holdPoll = 2 * time.Second

// waitGate holds the run before a destructive step until the gate allows
// it, the hold timeout passes (escalate) or ctx ends.
func (e *Executor) waitGate(ctx context.Context, run *Run, step Step) error {
	if e.Gate == nil || !step.Destructive {
		return nil
	}
	holdTimeout := holdTimeoutOf(run)
	var since time.Time
	for {
		d, err := e.Gate.Destructive(ctx, run, step.Name)
		if err != nil {
			// Fail closed: a safety input could not be read.
			d = Decision{Kind: "gate_error", Reason: "a safety check could not be made: " + err.Error()}
		}
		if d.Allow {
			if run.Hold != nil {
				e.Log.Info("hold released", "run", run.ID, "node", run.Node, "step", step.Name, "held_for", e.now().Sub(run.Hold.Since).Round(time.Second))
				run.Hold = nil
				run.Status = StatusRunning
				if err := e.save(ctx, run); err != nil {
					return err
				}
			}
			return nil
		}
		if d.Escalate {
			return Escalate("%s", d.Reason)
		}
		if d.Cancel {
			return &errCancelled{reason: d.Reason}
		}
		if since.IsZero() {
			since = e.now()
		}
		if run.Hold == nil || run.Hold.Kind != d.Kind || run.Hold.Reason != d.Reason {
			run.Status = StatusHeld
			run.Hold = &Hold{Kind: d.Kind, Reason: d.Reason, Since: since, RetryAt: d.RetryAt, Step: step.Name}
			e.Log.Warn("run held before a destructive step", "run", run.ID, "node", run.Node, "step", step.Name, "kind", d.Kind, "reason", d.Reason)
			if e.Observer != nil {
				e.Observer.Held(run.Runbook, d.Kind)
			}
			if e.Deps.Nodes != nil && !run.DryRun {
				// A stable note (no run ID, no times): repeated holds of a
				// kind are one Event series; the detail is in the run's hold
				// (receiver status, /api/v1/runs) and the log line above.
				_ = e.Deps.Nodes.Event(ctx, run.Node, "Warning", "NodeHealerHeld", fmt.Sprintf("a %s run is held before its %s step (%s); see receiver status for why and until when", run.Runbook, step.Name, d.Kind))
			}
			if err := e.save(ctx, run); err != nil {
				return err
			}
		}
		if e.now().Sub(since) > holdTimeout {
			return Escalate("held before %s for more than %s: %s", step.Name, holdTimeout, d.Reason)
		}
		wait := holdPoll
		if !d.RetryAt.IsZero() {
			wait = min(max(d.RetryAt.Sub(e.now()), 100*time.Millisecond), holdPoll)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return leaseErr(ctx)
		case <-t.C:
		}
	}
}

func holdTimeoutOf(run *Run) time.Duration {
	if v, ok := run.Params["hold_timeout"]; ok {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			return d
		}
	}
	d, _ := time.ParseDuration(paramDefault("hold_timeout"))
	return d
}
