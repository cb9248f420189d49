package reconcile

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/node-healer/node-healer/internal/queue"
	"github.com/node-healer/node-healer/internal/runbooks"
)

// runs re-queues every non-final run that no stream entry leads to, no
// worker holds and nobody saved within the grace period.
func (r *Reconciler) runs(ctx context.Context, now time.Time, runs []*runbooks.Run, refs *queue.Refs, rep *Report) error {
	var errs []error
	for _, run := range runs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if refs.Has(run.ID) {
			continue // pending (deferred, running, or left by a dead worker and claimed after claim_after) or unread
		}
		if idle := now.Sub(run.Updated); idle < r.Grace {
			rep.Waiting++
			r.Log.Debug("reconcile: run has no stream entry; waiting out the grace period", "run", run.ID, "node", run.Node,
				"idle", idle.Round(time.Millisecond), "grace", r.Grace)
			continue
		}
		requeued, err := r.requeue(ctx, run.ID, run.Node)
		if err != nil {
			errs = append(errs, err)
			r.Log.Error("reconcile: could not re-queue a run nothing tracks; retried next interval", "run", run.ID, "node", run.Node, "err", err)
			continue
		}
		if requeued {
			rep.Requeued = append(rep.Requeued, run.ID)
		}
	}
	return errors.Join(errs...)
}

// requeue checks the run again holding its node's lease, then adds a
// stream entry for it.
func (r *Reconciler) requeue(ctx context.Context, id, node string) (bool, error) {
	var (
		run  *runbooks.Run
		dead []string
	)
	held, err := r.withNode(ctx, node, func(ctx context.Context) error {
		fresh, err := r.Runs.Load(ctx, id)
		if errors.Is(err, runbooks.ErrRunNotFound) {
			return nil // gone meanwhile: the node check deals with any mark it left
		}
		if err != nil {
			return err
		}
		if fresh.Status.Final() || r.now().Sub(fresh.Updated) < r.Grace {
			return nil
		}
		refs, err := r.Stream.Refs(ctx)
		if err != nil {
			return err
		}
		if refs.Has(id) {
			return nil
		}
		run, dead = fresh, refs.DeadFor(id)
		return nil
	})
	if err != nil || !held || run == nil {
		if err == nil && !held {
			r.Log.Debug("reconcile: run has no stream entry but its node is locked (a worker is on it); left alone", "run", id, "node", node)
		}
		return false, err
	}
	// The lease is released before the entry is added: a worker handed
	// the entry at once must find the node free. Nothing else can queue
	// this run in between (no entry leads to it).
	entry, err := r.Stream.Requeue(ctx, jobOf(run), dead...)
	if err != nil {
		return false, err
	}
	r.orphan(KindRunRequeued)
	r.Log.Warn("RECONCILE: run was unfinished but nothing tracked it (its stream entry was lost: Redis restart without persistence, failover, or a manual XDEL/XACK); re-queued, a worker resumes it from its saved step. Nothing to do unless this repeats: then check Redis persistence (appendonly) and replication",
		"run", run.ID, "node", run.Node, "runbook", run.Runbook, "status", run.Status, "next_step", stepName(run),
		"idle", r.now().Sub(run.Updated).Round(time.Second), "entry", entry, "dead_entries", len(dead))
	return true, nil
}

// jobOf rebuilds the queued request a run came from; the worker loads
// the run by its ID and resumes it.
func jobOf(run *runbooks.Run) queue.Job {
	return queue.Job{RunID: run.ID, Fingerprint: run.Fingerprint, StartsAt: run.AlertStart, Node: run.Node,
		Route: run.Route, Runbook: run.Runbook, DryRun: run.DryRun, Labels: run.Labels, Params: run.Params,
		Enqueued: run.Created}
}

// stepName is the run's next step as the timeline shows it.
func stepName(run *runbooks.Run) string {
	if n := len(run.Timeline); n > 0 {
		if e := run.Timeline[n-1]; e.Outcome == runbooks.OutcomeStarted || e.Outcome == runbooks.OutcomeInterrupted {
			return e.Step
		}
	}
	return fmt.Sprintf("step #%d", run.Next)
}
