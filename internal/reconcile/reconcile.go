package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"

	"github.com/node-healer/node-healer/internal/locks"
	"github.com/node-healer/node-healer/internal/queue"
	"github.com/node-healer/node-healer/internal/runbooks"
)

// Runs reads run records (runstore.Store implements it).
type Runs interface {
	// Active returns every run that is not final, and how many records
	// could not be decoded.
	Active(ctx context.Context) ([]*runbooks.Run, int, error)
	Load(ctx context.Context, id string) (*runbooks.Run, error)
}

// Stream reads and refills the alert stream (queue.Queue implements it).
type Stream interface {
	Refs(ctx context.Context) (*queue.Refs, error)
	Requeue(ctx context.Context, job queue.Job, dead ...string) (string, error)
}

// NodeLister lists nodes from a cache (kube.NodeCache implements it).
type NodeLister interface {
	List() ([]*corev1.Node, error)
	Synced() bool
}

// NodeAPI reads and marks nodes (kube.Nodes implements it).
type NodeAPI interface {
	runbooks.NodeOps
	runbooks.NodeWriter
}

// Reconciler finds half-done work nothing tracks any more and resumes it
// or hands it to a human. See the package documentation.
type Reconciler struct {
	Runs   Runs
	Stream Stream
	// Locker takes the "reconcile" lease and node leases. Give it its own
	// Locker without a Registerer, so node_healer_lock_acquire_total keeps
	// counting the workers' node locks only.
	Locker *locks.Locker
	// Redis and Prefix hold the findings waiting out their grace period
	// (<prefix>:reconcile:suspects), shared by every replica.
	Redis  redis.UniversalClient
	Prefix string
	// Nodes and Kube find and escalate marked nodes; nil Nodes turns the
	// node check off.
	Nodes NodeLister
	Kube  NodeAPI

	// Interval between passes (default 30s).
	Interval time.Duration
	// Grace: how long a finding must stand before it is acted on (default
	// and minimum 2×Interval). Bound: interval + grace.
	Grace time.Duration
	// LockTTL is the TTL of the leases the reconciler takes (default 30s).
	LockTTL time.Duration
	// ExcludeLabel: nodes labelled <ExcludeLabel>=true are left alone.
	ExcludeLabel string
	// DryRun logs what would be done and changes no node (re-queuing,
	// which only touches Redis, still happens).
	DryRun bool

	Log     *slog.Logger
	Metrics *Metrics // optional
	Now     func() time.Time
}

// Report is what one pass did.
type Report struct {
	Requeued  []string // run IDs re-queued
	Escalated []string // nodes escalated to a human
	Waiting   int      // findings still inside their grace period
}

// Lock names.
const (
	leaseName  = "reconcile"
	nodePrefix = "node:" // the workers' node lease, see internal/worker
)

func (r *Reconciler) defaults() {
	if r.Interval <= 0 {
		r.Interval = 30 * time.Second
	}
	r.Grace = max(r.Grace, 2*r.Interval)
	if r.LockTTL <= 0 {
		r.LockTTL = 30 * time.Second
	}
	if r.Log == nil {
		r.Log = slog.New(slog.DiscardHandler)
	}
	if r.Prefix == "" {
		r.Prefix = "node-healer"
	}
}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Run passes now and then every Interval until ctx ends.
func (r *Reconciler) Run(ctx context.Context) {
	r.defaults()
	r.Log.Info("reconciler started: half-done runs are re-queued and orphaned node marks escalated",
		"interval", r.Interval, "grace", r.Grace, "bound", r.Interval+r.Grace)
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	for {
		_, _ = r.Pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Pass runs one reconcile pass if no other replica is running one. A
// pass skipped for that reason returns a zero Report and no error.
func (r *Reconciler) Pass(ctx context.Context) (Report, error) {
	r.defaults()
	lease, err := r.Locker.Acquire(ctx, leaseName, r.LockTTL)
	if errors.Is(err, locks.ErrNotAcquired) {
		r.count(ResultSkipped)
		return Report{}, nil
	}
	if err != nil {
		r.count(ResultError)
		r.Log.Error("reconcile: cannot take the reconcile lease; next try in one interval", "err", err, "interval", r.Interval)
		return Report{}, err
	}
	kept, stop := lease.Keep(ctx)
	rep, err := r.pass(kept)
	stop()
	relCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	_ = lease.Release(relCtx)
	cancel()
	if err != nil {
		r.count(ResultError)
		if ctx.Err() == nil {
			r.Log.Error("reconcile pass incomplete; retried next interval", "err", err, "interval", r.Interval)
		}
		return rep, err
	}
	r.count(ResultOK)
	if r.Metrics != nil {
		r.Metrics.LastSuccess.SetToCurrentTime()
	}
	return rep, nil
}

func (r *Reconciler) pass(ctx context.Context) (Report, error) {
	var rep Report
	now := r.now()
	// Runs first, the stream second: a run acknowledged in between is
	// final (it is saved final before its entry is acknowledged), and
	// every finding is checked again under the node's lease.
	runs, corrupt, err := r.Runs.Active(ctx)
	if err != nil {
		return rep, err
	}
	if corrupt > 0 {
		r.Log.Warn("reconcile: run records that cannot be decoded are skipped; `receiver runs list` shows what is readable", "count", corrupt)
	}
	refs, err := r.Stream.Refs(ctx)
	if err != nil {
		return rep, err
	}
	var errs []error
	if err := r.runs(ctx, now, runs, refs, &rep); err != nil {
		errs = append(errs, err)
	}
	if r.Nodes != nil {
		if err := r.nodes(ctx, now, refs, &rep); err != nil {
			errs = append(errs, err)
		}
	}
	return rep, errors.Join(errs...)
}

func (r *Reconciler) count(result string) {
	if r.Metrics != nil {
		r.Metrics.Passes.WithLabelValues(result).Inc()
	}
}

func (r *Reconciler) orphan(kind string) {
	if r.Metrics != nil {
		r.Metrics.Orphans.WithLabelValues(kind).Inc()
	}
}

// withNode runs f holding the node's lease, so no worker acts on the
// node meanwhile; f's context is cancelled if the lease is lost and
// carries its fence, so node writes are fenced like a worker's. held is
// false (and f not run) when someone else holds it: a worker is on the
// node, and that is not an orphan.
func (r *Reconciler) withNode(ctx context.Context, node string, f func(ctx context.Context) error) (held bool, err error) {
	lease, err := r.Locker.Acquire(ctx, nodePrefix+node, r.LockTTL)
	if errors.Is(err, locks.ErrNotAcquired) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("node lease %s: %w", node, err)
	}
	kept, stop := lease.Keep(ctx)
	err = f(runbooks.WithFence(kept, lease.Fence()))
	stop()
	relCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if rerr := lease.Release(relCtx); rerr != nil && !errors.Is(rerr, locks.ErrLeaseLost) {
		r.Log.Warn("reconcile: could not release the node lease; it expires by itself", "node", node, "err", rerr, "ttl", r.LockTTL)
	}
	return true, err
}
