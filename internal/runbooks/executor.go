package runbooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Observer receives step and run outcomes (metrics implement it).
type Observer interface {
	StepDone(runbook, step string, outcome Outcome, d time.Duration)
	RunDone(runbook string, status Status)
	Held(runbook, kind string)
}

// Executor runs runbooks step by step, saving state after each step.
type Executor struct {
	Registry *Registry
	Store    Store
	Deps     Deps
	Log      *slog.Logger
	Observer Observer // optional
	Gate     Gate     // optional: cluster-wide safety before destructive steps
	Worker   string   // this worker's name, recorded in the timeline
	Now      func() time.Time
	// AfterStep, if set, is called after a step's outcome is saved (a step
	// boundary). Test failpoints only.
	AfterStep func(run *Run, step string)
	// OnFinish, if set, is called once a run reached a final status
	// (succeeded, failed, escalated, cancelled), before it is saved; it
	// must not block (hooks queue their deliveries).
	OnFinish func(ctx context.Context, run *Run)
}

// OutcomeInterrupted marks a step that was started by a worker that then
// stopped (crash, lost lease) before recording its end.
const OutcomeInterrupted Outcome = "interrupted"

// Exec is what a step sees: the run, its dependencies, and a way to
// save a decision before acting on it.
type Exec struct {
	*Deps
	Run    *Run
	Step   string
	Fence  int64
	DryRun bool
	Log    *slog.Logger

	now       func() time.Time
	save      func(ctx context.Context) error // a decision: replicated when configured
	savePlain func(ctx context.Context) error
	lease     Lease
}

// commitDecision saves a decision taken before an irreversible action (a
// reset). When Redis replicas did not acknowledge it in time
// (ErrNotReplicated: a failover could lose it, and a new primary would let
// the run decide — and reset — again), the decision is forgotten (forget's
// Prior keys removed, saved on the primary) and the error wraps
// ErrUnavailable: nothing is sent, the run is resumed later and decides
// again.
func (x *Exec) commitDecision(ctx context.Context, forget ...string) error {
	err := x.Checkpoint(ctx)
	if !errors.Is(err, ErrNotReplicated) {
		return err
	}
	for _, k := range forget {
		delete(x.Run.Prior, k)
	}
	if serr := x.savePlain(ctx); serr != nil {
		// The primary keeps the decision: a resume finds it and never
		// resends (the reset may be lost, never doubled).
		return fmt.Errorf("%w: %w (forgetting the decision failed too: %v)", ErrUnavailable, err, serr)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// CheckLease returns an error wrapping ErrLeaseLost unless the run's node
// lease is still held by the local deadline. A step calls it immediately
// before an irreversible action (a BMC reset), after committing the
// decision with Checkpoint: only the current lease holder acts.
func (x *Exec) CheckLease() error {
	if x.lease == nil {
		return nil
	}
	if err := x.lease.Check(); err != nil {
		return fmt.Errorf("%w: %w", ErrLeaseLost, err)
	}
	return nil
}

// Now is the executor's clock.
func (x *Exec) Now() time.Time { return x.now() }

// reset sends a power action through the BMC, but only while the node
// lease is still ours by its local deadline, checked before and again
// immediately before the request (through WithPreSend) (the decision was committed with a fenced Checkpoint just
// before). A lost lease returns ErrLeaseLost and sends nothing; the new
// holder finds the decision saved and treats the reset as possibly sent
// (never a second one).
func (x *Exec) reset(ctx context.Context, kind string) (string, error) {
	if err := x.CheckLease(); err != nil {
		return "", err
	}
	// Checked again by the adapter after it read the system, right before
	// the request leaves.
	return x.Power.Reset(WithPreSend(ctx, x.CheckLease), x.Run.Node, kind)
}

// Checkpoint saves the run now. A step calls it after recording a
// decision in Run.Prior and before acting on it (sending a reset), so a
// resumed run finds the decision and does not act twice.
func (x *Exec) Checkpoint(ctx context.Context) error { return x.save(ctx) }

// Audit writes the one audit line every mutation gets.
func (x *Exec) Audit(ctx context.Context, action, detail string) {
	x.Log.LogAttrs(ctx, slog.LevelInfo, "audit",
		slog.Bool("audit", true), slog.String("action", action), slog.String("node", x.Run.Node),
		slog.String("run", x.Run.ID), slog.String("runbook", x.Run.Runbook), slog.String("step", x.Step),
		slog.Int64("fence", x.Fence), slog.Bool("dry_run", x.DryRun), slog.String("detail", detail))
}

func (e *Executor) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// Execute runs the remaining steps of run. ctx is the lease context: when
// it is cancelled the run stops before its next step and stays resumable
// (status running) for whoever takes the lease next. lease is the node
// lease: every save is checked against it first and carries its fence
// (the store refuses a lower one), node writes carry the fence too
// (WithFence), and nothing is written once the lease is known lost.
//
// It returns nil when the run reached a final status (check run.Status),
// and an error when the run stopped and must be resumed later.
func (e *Executor) Execute(ctx context.Context, run *Run, lease Lease) error {
	fence := lease.Fence()
	ctx = WithFence(context.WithValue(ctx, leaseKey{}, lease), fence)
	log := e.Log.With("run", run.ID, "runbook", run.Runbook, "node", run.Node)
	if run.Status.Final() {
		return nil
	}
	book, ok := e.Registry.Get(run.Runbook)
	if !ok {
		run.Status, run.Error = StatusFailed, fmt.Sprintf("unknown runbook %q", run.Runbook)
		e.finish(ctx, log, run)
		return e.save(ctx, run)
	}
	if n := len(run.Timeline); n > 0 && run.Timeline[n-1].Outcome == OutcomeStarted {
		run.Timeline[n-1].Outcome = OutcomeInterrupted
		run.Timeline[n-1].End = e.now()
		log.Info("resuming interrupted run", "step", run.Timeline[n-1].Step, "fence", fence)
	}
	run.Status = StatusRunning
	run.Attempts++
	if err := e.save(ctx, run); err != nil {
		return err
	}
	for run.Next < len(book.Steps) {
		if ctx.Err() != nil {
			return leaseErr(ctx)
		}
		step := book.Steps[run.Next]
		if err := e.waitGate(ctx, run, step); err != nil {
			var esc *EscalationError
			if errors.As(err, &esc) {
				e.escalate(ctx, log, run, step.Name, esc.Reason)
				return e.save(ctx, run)
			}
			var cancel *errCancelled
			if errors.As(err, &cancel) {
				e.cancel(ctx, log, run, step.Name, cancel.reason)
				return e.save(ctx, run)
			}
			return err
		}
		start := e.now()
		run.Timeline = append(run.Timeline, Entry{Step: step.Name, Start: start, Outcome: OutcomeStarted, Worker: e.Worker, Fence: fence})
		if err := e.save(ctx, run); err != nil {
			return err
		}
		x := &Exec{Deps: &e.Deps, Run: run, Step: step.Name, Fence: fence, DryRun: run.DryRun, lease: lease,
			Log: log.With("step", step.Name), now: e.now,
			save:      func(ctx context.Context) error { return e.saveAs(ctx, run, true) },
			savePlain: func(ctx context.Context) error { return e.save(ctx, run) }}
		outcome, detail, err := step.Do(ctx, x)
		end := e.now()
		entry := &run.Timeline[len(run.Timeline)-1]
		entry.End, entry.Detail = end, detail
		if err != nil {
			if errors.Is(err, ErrStaleFence) || errors.Is(err, ErrLeaseLost) || errors.Is(err, ErrStaleWrite) {
				// Another holder took the node over: write nothing more.
				log.Warn("stopped: the node's lease belongs to a newer holder; nothing more is written by this worker", "step", step.Name, "fence", fence, "err", err)
				return fmt.Errorf("%w: step %s: %w", ErrLeaseLost, step.Name, err)
			}
			if ctx.Err() != nil {
				// Shutting down (or the lease lapsed) mid-step: record the
				// interruption if the lease is still ours, for a resume.
				entry.Outcome = OutcomeInterrupted
				entry.Detail = err.Error()
				_ = e.save(context.WithoutCancel(ctx), run)
				return leaseErr(ctx)
			}
			entry.Outcome = OutcomeFailed
			entry.Detail = err.Error()
			var esc *EscalationError
			if errors.As(err, &esc) {
				entry.Outcome = OutcomeEscalated
				e.observeStep(run.Runbook, step.Name, OutcomeEscalated, end.Sub(start))
				e.escalate(ctx, log, run, step.Name, esc.Reason)
				return e.save(ctx, run)
			}
			if errors.Is(err, ErrUnavailable) && run.Attempts < MaxAttempts {
				// Not the node's fault: keep the run for a later attempt.
				log.Warn("step could not reach a dependency; the run will be resumed", "step", step.Name, "err", err, "attempt", run.Attempts)
				e.observeStep(run.Runbook, step.Name, OutcomeFailed, end.Sub(start))
				if serr := e.save(ctx, run); serr != nil {
					return serr
				}
				return fmt.Errorf("step %s: %w", step.Name, err)
			}
			run.Status, run.Error = StatusFailed, fmt.Sprintf("step %s: %v", step.Name, err)
			e.observeStep(run.Runbook, step.Name, OutcomeFailed, end.Sub(start))
			log.Error("step failed", "step", step.Name, "err", err)
			_ = e.Deps.Nodes.Event(ctx, run.Node, "Warning", "NodeHealerStepFailed",
				fmt.Sprintf("run %s (%s): step %s failed: %v", run.ID, run.Runbook, step.Name, err))
			e.finish(ctx, log, run)
			return e.save(ctx, run)
		}
		entry.Outcome = outcome
		run.Next++
		e.observeStep(run.Runbook, step.Name, outcome, end.Sub(start))
		log.Info("step finished", "step", step.Name, "outcome", outcome, "detail", detail, "took", end.Sub(start).Round(time.Millisecond))
		if err := e.save(ctx, run); err != nil {
			return err
		}
		if e.AfterStep != nil {
			e.AfterStep(run, step.Name)
		}
	}
	run.Status = StatusSucceeded
	e.finish(ctx, log, run)
	return e.save(ctx, run)
}

// cancel stops a run before a destructive step because its alert
// resolved, and undoes this run's own cordon (nothing else it did is
// destructive to undo).
func (e *Executor) cancel(ctx context.Context, log *slog.Logger, run *Run, step, reason string) {
	detail := "stopped before " + step + ": " + reason
	if _, cordoned := run.Prior["unschedulable"]; cordoned && e.Deps.Nodes != nil {
		start := e.now()
		x := &Exec{Deps: &e.Deps, Run: run, Step: "uncordon", DryRun: run.DryRun, Log: log.With("step", "uncordon"),
			now: e.now, save: func(ctx context.Context) error { return e.save(ctx, run) }, lease: leaseOf(ctx)}
		x.savePlain = x.save
		if f, ok := FenceOf(ctx); ok {
			x.Fence = f
		}
		o, d, err := Uncordon(ctx, x)
		if err != nil {
			o, d = OutcomeFailed, err.Error()
		}
		run.Timeline = append(run.Timeline, Entry{Step: "uncordon", Start: start, End: e.now(), Outcome: o,
			Detail: "alert resolved: " + d, Worker: e.Worker})
	}
	run.Status, run.Error, run.Hold = StatusCancelled, detail, nil
	log.Info("run cancelled: its alert resolved before a destructive step", "step", step)
	if e.Deps.Nodes != nil && !run.DryRun {
		_ = e.Deps.Nodes.Event(ctx, run.Node, "Normal", "NodeHealerCancelled", fmt.Sprintf("node-healer run %s (%s) %s", run.ID, run.Runbook, detail))
	}
	e.finish(ctx, log, run)
}

func (e *Executor) finish(ctx context.Context, log *slog.Logger, run *Run) {
	if e.Observer != nil {
		e.Observer.RunDone(run.Runbook, run.Status)
	}
	log.Info("run finished", "status", run.Status, "err", run.Error)
	if e.OnFinish != nil {
		e.OnFinish(ctx, run)
	}
}

func (e *Executor) observeStep(book, step string, o Outcome, d time.Duration) {
	if e.Observer != nil {
		e.Observer.StepDone(book, step, o, d)
	}
}

type leaseKey struct{}

func leaseOf(ctx context.Context) Lease {
	l, _ := ctx.Value(leaseKey{}).(Lease)
	return l
}

// save writes the run under the lease in ctx: never once the lease is
// known lost, and always with its fence (the store refuses a lower one).
// A refused or unguarded write comes back wrapping ErrLeaseLost.
func (e *Executor) save(ctx context.Context, run *Run) error { return e.saveAs(ctx, run, false) }

// saveAs is save; decision saves go through ReplicatedSaver when the store
// has it.
func (e *Executor) saveAs(ctx context.Context, run *Run, decision bool) error {
	lease := leaseOf(ctx)
	if lease == nil {
		return fmt.Errorf("save run %s: %w: no lease held (a run is only written under its node lease)", run.ID, ErrLeaseLost)
	}
	if err := lease.Check(); err != nil {
		return fmt.Errorf("save run %s: %w: %w", run.ID, ErrLeaseLost, err)
	}
	run.Fence = lease.Fence()
	run.Updated = e.now()
	store := e.Store.Save
	if rs, ok := e.Store.(ReplicatedSaver); ok && decision {
		store = rs.SaveReplicated
	}
	if err := store(context.WithoutCancel(ctx), run); err != nil {
		if errors.Is(err, ErrStaleWrite) {
			return fmt.Errorf("save run %s: %w: %w", run.ID, ErrLeaseLost, err)
		}
		return fmt.Errorf("save run %s: %w", run.ID, err)
	}
	return nil
}

func leaseErr(ctx context.Context) error {
	if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
		return fmt.Errorf("%w: %w", ErrLeaseLost, c)
	}
	return fmt.Errorf("%w: %w", ErrLeaseLost, ctx.Err())
}
