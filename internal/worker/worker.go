// Package worker turns queued requests into runs: it reads the stream
// through the consumer group, takes the node's lease, runs the runbook
// with the executor and acknowledges the entry once the run is final.
//
// A run that stops before it is final (lease lost, Redis or the API
// server failing, shutdown) is not acknowledged: its entry stays pending
// and another worker — in this replica or another — claims it after
// workers.claim_after and resumes it from its saved step.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/node-healer/node-healer/internal/locks"
	"github.com/node-healer/node-healer/internal/metrics"
	"github.com/node-healer/node-healer/internal/queue"
	"github.com/node-healer/node-healer/internal/runbooks"
)

// Pool is this replica's set of workers.
type Pool struct {
	Queue    *queue.Queue
	Locker   *locks.Locker
	Executor *runbooks.Executor
	Store    runbooks.Store
	Name     string // consumer name prefix, unique per replica
	Count    int
	LockTTL  time.Duration
	Block    time.Duration // how long one read waits for new entries (default 2s)
	Log      *slog.Logger
	Metrics  *metrics.Metrics // optional
	// Gate, if set, admits runs before they start (cluster caps, breaker,
	// pause, silences); a refused run is deferred, not dropped.
	Gate runbooks.Gate
	// Alerts tells whether a deferred run's alert resolved meanwhile.
	Alerts runbooks.AlertState

	// ResolvedCheck is how often the alerts of parked runs are checked
	// for a resolved notification (default 5s; park.go).
	ResolvedCheck time.Duration

	// parking holds the deliveries of runs this replica deferred, to pick
	// them up again when a slot frees or their RetryAt comes (park.go).
	parking parking
}

// Run starts Count workers and returns when ctx is cancelled and every
// worker has stopped (a running step finishes or is interrupted first).
func (p *Pool) Run(ctx context.Context) error {
	if p.Count < 1 {
		p.Count = 1
	}
	if p.Block == 0 {
		p.Block = 2 * time.Second
	}
	if err := p.Queue.EnsureGroup(ctx); err != nil && ctx.Err() == nil {
		// Not fatal: every read creates the group when it is missing.
		p.redisError("read", err)
		p.Log.Warn("cannot create the stream's consumer group yet; workers will retry", "err", err)
	}
	var wg sync.WaitGroup
	for i := range p.Count {
		consumer := fmt.Sprintf("%s-%d", p.Name, i)
		wg.Go(func() { p.loop(ctx, consumer) })
	}
	if p.Metrics != nil {
		wg.Go(func() { p.observeBacklog(ctx) })
	}
	wg.Go(func() { p.pruneConsumers(ctx) })
	wg.Go(func() { p.watchParkedAlerts(ctx) })
	wg.Go(func() {
		// Runs that ended in other replicas freed slots too.
		for from := range p.Queue.Ended(ctx) {
			if from != p.Name {
				p.parking.ended()
			}
		}
	})
	wg.Wait()
	return nil
}

// resolvedReader reads many alerts' resolved records in one round trip
// (queue.Queue.ResolvedMany).
type resolvedReader interface {
	ResolvedMany(ctx context.Context, fingerprints []string) (map[string]time.Time, error)
}

// watchParkedAlerts makes due the parked runs whose alert resolved, so
// that a worker cancels them now rather than at claim_after (park.go).
func (p *Pool) watchParkedAlerts(ctx context.Context) {
	rr, ok := p.Alerts.(resolvedReader)
	if !ok {
		return
	}
	every := p.ResolvedCheck
	if every <= 0 {
		every = 5 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fps := p.parking.fingerprints()
		if len(fps) == 0 {
			continue
		}
		at, err := rr.ResolvedMany(ctx, fps)
		if err != nil {
			if ctx.Err() == nil {
				p.redisError("read", err)
			}
			continue
		}
		if n := p.parking.resolved(at, time.Now()); n > 0 {
			p.Log.Info("deferred runs whose alert resolved are picked up to be cancelled", "runs", n)
		}
	}
}

func (p *Pool) loop(ctx context.Context, consumer string) {
	log := p.Log.With("worker", consumer)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if pk, ok := p.parking.next(time.Now(), p.Queue.ClaimAfter()); ok {
			p.unpark(ctx, log, consumer, pk)
			continue
		}
		block := max(p.parking.wait(time.Now(), p.Block), 10*time.Millisecond)
		ds, bad, err := p.Queue.Read(ctx, consumer, 1, block)
		for _, id := range bad {
			log.Error("dropped a stream entry that could not be decoded", "entry", id)
			if p.Metrics != nil {
				p.Metrics.BadEntries.Inc()
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.redisError("read", err)
			log.Error("cannot read the alert stream; retrying", "err", err, "retry_in", backoff)
			sleep(ctx, backoff)
			backoff = min(backoff*2, 10*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		for _, d := range ds {
			p.handle(ctx, log, consumer, d)
		}
	}
}

// unpark picks up a parked delivery again, if its entry stayed idle since
// this replica deferred it (else another worker has it, or it is done).
func (p *Pool) unpark(ctx context.Context, log *slog.Logger, consumer string, pk parked) {
	took, err := p.Queue.Reclaim(ctx, consumer, pk.d.ID, max(time.Since(pk.since)-reclaimMargin, 0))
	if err != nil {
		p.redisError("read", err)
		return // left pending: the ordinary claim takes it
	}
	if !took {
		return
	}
	d := pk.d
	d.Retries = 0
	p.handleFrom(ctx, log, consumer, d, time.Now())
}

// handle runs one delivery. It acknowledges only when the run is final.
func (p *Pool) handle(ctx context.Context, log *slog.Logger, consumer string, d queue.Delivery) {
	p.handleFrom(ctx, log, consumer, d, time.Now())
}

// handleFrom is handle for a delivery that began at since (when the
// entry's idle time was last reset by this worker).
func (p *Pool) handleFrom(ctx context.Context, log *slog.Logger, consumer string, d queue.Delivery, since time.Time) {
	job := d.Job
	if d.Retries == 0 {
		log = log.With("run", job.RunID, "node", job.Node, "runbook", job.Runbook)
	}
	// The lock first, then the run: whatever the previous holder saved
	// before it released (or lost) the lease is what this worker resumes.
	lease, err := p.Locker.Acquire(ctx, "node:"+job.Node, p.LockTTL)
	if errors.Is(err, locks.ErrNotAcquired) {
		// Counted by the locker (node_healer_lock_acquire_total{result="contended"}).
		log.Info("node is locked by another run; leaving this one queued", "retry_after", p.Queue.ClaimAfter())
		return
	}
	if errors.Is(err, locks.ErrNotReplicated) {
		// Counted by the locker (node_healer_lock_acquire_total{result="not_replicated"}).
		log.Warn("the node lock was not acknowledged by enough Redis replicas in time (a failover could forget it); leaving the run queued — check the replicas' health and link",
			"err", err, "retry_after", p.Queue.ClaimAfter())
		return
	}
	if err != nil {
		p.redisError("lock", err)
		log.Error("cannot take the node lock; leaving the run queued", "err", err)
		return
	}
	run, err := p.Store.Load(ctx, job.RunID)
	switch {
	case errors.Is(err, runbooks.ErrRunNotFound):
		run = runbooks.NewRun(job, time.Now())
	case err != nil:
		p.redisError("save", err)
		log.Error("cannot load run state; leaving it queued", "err", err)
		p.releaseLease(ctx, log, lease)
		return
	}
	if run.Status.Final() {
		p.releaseLease(ctx, log, lease)
		if p.Gate != nil {
			p.Gate.Done(ctx, run) // a slot a crashed holder left behind
		}
		p.ack(ctx, log, d.ID)
		return
	}
	if d.Claimed && run.Admitted {
		log.Info("claimed a run another worker left unfinished", "next_step", run.Next, "fence", lease.Fence())
	}
	if p.Gate != nil {
		admitted, retryAt := p.admit(ctx, log, run, lease)
		if !admitted {
			p.releaseLease(ctx, log, lease)
			if run.Status.Final() {
				p.Gate.Done(ctx, run)
				p.ack(ctx, log, d.ID)
				return
			}
			// A short deferral (settle time) is waited out here; a longer one
			// is parked: picked up again when a run of this replica ends or
			// its RetryAt comes, else claimed after claim_after.
			if wait := time.Until(retryAt); !retryAt.IsZero() && wait <= softRetry && d.Retries < 5 {
				sleep(ctx, max(wait, 10*time.Millisecond))
				d.Retries++
				p.handleFrom(ctx, log, consumer, d, since)
				return
			}
			if ctx.Err() == nil {
				p.parking.park(d, since, retryAt)
			}
			return
		}
	}
	kept, stop := lease.Keep(ctx)
	touchDone := make(chan struct{})
	go p.touch(kept, consumer, d.ID, run, touchDone)
	if p.Metrics != nil {
		p.Metrics.RunsActive.Inc()
	}
	err = p.Executor.Execute(kept, run, lease)
	if p.Metrics != nil {
		p.Metrics.RunsActive.Dec()
	}
	stop()
	<-touchDone
	relCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if p.Gate != nil && run.Status.Final() {
		// A slot is held from admission until the run is final: a run that
		// stopped (lease lost, shutdown, a dependency down) keeps it, so
		// max_concurrent_runs holds while it waits to be resumed.
		p.Gate.Done(relCtx, run)
		// Its slot is free: a parked run here or in another replica may
		// take it.
		p.parking.ended()
		if err := p.Queue.AnnounceEnded(relCtx, p.Name); err != nil {
			p.redisError("ack", err)
		}
	}
	p.releaseLease(relCtx, log, lease)
	if err != nil {
		log.Warn("run stopped before finishing; it stays queued and will be resumed", "err", err, "next_step", run.Next)
		return
	}
	p.ack(relCtx, log, d.ID)
}

func (p *Pool) releaseLease(ctx context.Context, log *slog.Logger, lease *locks.Lease) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if rerr := lease.Release(ctx); rerr != nil && !errors.Is(rerr, locks.ErrLeaseLost) {
		log.Warn("could not release the node lock; it expires by itself", "err", rerr, "ttl", p.LockTTL)
	}
}

// admit asks the gate whether the run may start (or go on, after a
// crash: reservations are re-taken). A refusal defers the run with its
// reason and next-eligible time; a deferred run whose alert resolved in
// the meantime is cancelled.
func (p *Pool) admit(ctx context.Context, log *slog.Logger, run *runbooks.Run, lease *locks.Lease) (bool, time.Time) {
	if !run.Admitted && run.Status == runbooks.StatusDeferred && p.Alerts != nil && run.Fingerprint != "" {
		if resolved, at, err := p.Alerts.Resolved(ctx, run.Fingerprint); err == nil && resolved && !at.Before(run.AlertStart) {
			run.Status, run.Error = runbooks.StatusCancelled, "the alert resolved while the run was deferred ("+run.Hold.Reason+")"
			run.Hold = nil
			log.Info("deferred run cancelled: its alert resolved")
			if p.Metrics != nil {
				p.Metrics.Runs.WithLabelValues(run.Runbook, string(run.Status)).Inc()
			}
			p.saveRun(ctx, log, run, lease)
			return false, time.Time{}
		}
	}
	d, err := p.Gate.Admit(ctx, run)
	if err != nil {
		d = runbooks.Decision{Kind: "gate_error", Reason: "a safety check could not be made: " + err.Error()}
	}
	if d.Allow {
		if !run.Admitted || run.Status == runbooks.StatusDeferred {
			run.Admitted, run.Hold = true, nil
			if run.Status == runbooks.StatusDeferred {
				run.Status = runbooks.StatusPending
				// There may be room for more: let the next parked run try.
				p.parking.ended()
			}
			p.saveRun(ctx, log, run, lease)
		}
		return true, time.Time{}
	}
	if d.Escalate {
		if err := p.Executor.EscalateRun(ctx, run, lease, "admit", d.Reason); err != nil {
			log.Error("could not record the escalation", "err", err)
		}
		return false, time.Time{}
	}
	if d.Cancel && !run.Admitted {
		// Nothing was done yet (e.g. the node is being deleted).
		run.Status, run.Error, run.Hold = runbooks.StatusCancelled, d.Reason, nil
		log.Info("run cancelled before it started", "kind", d.Kind, "reason", d.Reason)
		if p.Metrics != nil {
			p.Metrics.Runs.WithLabelValues(run.Runbook, string(run.Status)).Inc()
		}
		p.saveRun(ctx, log, run, lease)
		return false, time.Time{}
	}
	changed := run.Hold == nil || run.Hold.Kind != d.Kind || run.Status != runbooks.StatusDeferred
	now := time.Now()
	if changed {
		run.Hold = &runbooks.Hold{Kind: d.Kind, Reason: d.Reason, Since: now}
	}
	// Same kind, new detail (another mark, a later retry time): shown,
	// not counted again.
	run.Hold.Reason = d.Reason
	run.Hold.RetryAt = d.RetryAt
	if run.Admitted {
		// A run that had started keeps its status; only its reservation waits.
		run.Hold.Step = "resume"
	} else {
		run.Status = runbooks.StatusDeferred
	}
	if changed {
		log.Warn("run deferred by a safety limit; it stays queued", "kind", d.Kind, "reason", d.Reason, "retry_at", d.RetryAt)
		if p.Metrics != nil {
			p.Metrics.Deferrals.WithLabelValues(d.Kind).Inc()
		}
		if ev := p.Executor.Deps.Nodes; ev != nil && !run.DryRun && d.Kind != "settle" {
			// A stable note (no run ID, no times): repeated deferrals of a
			// kind are one Event series; the detail is in the run's hold
			// (receiver status, /api/v1/runs) and the log line above.
			_ = ev.Event(ctx, run.Node, "Warning", "NodeHealerDeferred", "a "+run.Runbook+" run is deferred by a safety limit ("+d.Kind+") and stays queued; see receiver status for why and until when")
		}
	}
	p.saveRun(ctx, log, run, lease)
	return false, d.RetryAt
}

// softRetry: deferrals shorter than this are waited out by the worker.
const softRetry = 10 * time.Second

// saveRun writes the run under lease: never once the lease is known lost,
// and always with its fence (the store refuses a lower one).
func (p *Pool) saveRun(ctx context.Context, log *slog.Logger, run *runbooks.Run, lease *locks.Lease) {
	if err := lease.Check(); err != nil {
		log.Warn("not saving the run: the node lease is lost", "err", err)
		return
	}
	run.Fence = lease.Fence()
	run.Updated = time.Now()
	if run.Created.IsZero() {
		run.Created = run.Updated
	}
	if err := p.Store.Save(ctx, run); errors.Is(err, runbooks.ErrStaleWrite) {
		log.Warn("the run was written by a newer lease holder; this worker leaves it", "err", err)
	} else if err != nil {
		p.redisError("save", err)
		log.Error("cannot save the run", "err", err)
	}
}

// touch keeps the stream entry from being claimed while the run goes on.
func (p *Pool) touch(ctx context.Context, consumer, id string, run *runbooks.Run, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(max(p.Queue.ClaimAfter()/3, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := p.Queue.Touch(ctx, consumer, id); err != nil && ctx.Err() == nil {
				p.redisError("read", err)
			}
			if p.Gate != nil {
				if err := p.Gate.Refresh(ctx, run); err != nil && ctx.Err() == nil {
					p.Log.Warn("could not refresh the run's concurrency slot", "run", run.ID, "err", err)
				}
			}
		}
	}
}

func (p *Pool) ack(ctx context.Context, log *slog.Logger, id string) {
	if err := p.Queue.Ack(ctx, id); err != nil {
		p.redisError("ack", err)
		log.Error("cannot acknowledge a finished run; another worker will find it final and acknowledge it", "err", err)
	}
}

func (p *Pool) observeBacklog(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		if lag, pending, err := p.Queue.Backlog(ctx); err == nil {
			p.Metrics.StreamLag.Set(float64(lag))
			p.Metrics.StreamPending.Set(float64(pending))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *Pool) redisError(op string, err error) {
	if p.Metrics != nil && err != nil {
		p.Metrics.RedisErrors.WithLabelValues(op).Inc()
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Consumers are named after pods (<pod>-<i>); those of replicas that are
// gone are deleted once idle this long with nothing pending. A live worker
// reads every Block, or holds a pending entry while it runs.
const (
	consumerIdle = time.Hour
	pruneEvery   = 10 * time.Minute
)

// pruneConsumers deletes the stream consumers of gone replicas, at start
// and every pruneEvery (queue.PruneConsumers: never one with pending
// entries). Every replica does it; a pass finds nothing left to delete
// after another.
func (p *Pool) pruneConsumers(ctx context.Context) {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		deleted, err := p.Queue.PruneConsumers(ctx, consumerIdle)
		if err != nil && ctx.Err() == nil {
			p.redisError("read", err)
			p.Log.Warn("cannot delete idle stream consumers; retrying later", "err", err, "retry_in", pruneEvery)
		}
		if len(deleted) > 0 {
			p.Log.Info("deleted stream consumers of gone replicas (idle, nothing pending)", "consumers", deleted, "idle_over", consumerIdle)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
