package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
)

// Drain defaults.
const (
	DefaultDrainTimeout     = 10 * time.Minute
	DefaultDrainConcurrency = 32
)

// Drainer evicts pods from a node with kubectl drain's semantics, in
// priority order, through the Eviction API only: it never deletes a pod
// itself and never force-deletes. It does not cordon: the caller cordons
// first (Nodes.SetUnschedulable), so that nothing is scheduled back.
//
// RBAC: pods list/watch, pods/eviction create, and (for pods with
// PersistentVolumeClaims) persistentvolumeclaims and persistentvolumes get.
type Drainer struct {
	Client kubernetes.Interface
	Log    *slog.Logger
}

// DrainOptions is the policy of one drain.
type DrainOptions struct {
	// DeleteEmptyDirData allows evicting pods with emptyDir volumes (their
	// data is lost); without it such pods make the drain fail before any
	// eviction, naming them.
	DeleteEmptyDirData bool
	// Force allows evicting pods no controller manages (they are not
	// recreated anywhere); without it they make the drain fail likewise.
	Force bool
	// EvictCritical allows evicting system-node-critical and
	// system-cluster-critical pods, which are otherwise left alone.
	EvictCritical bool
	// Timeout bounds the whole drain (DefaultDrainTimeout when 0). When
	// it passes, Drain returns a *DrainTimeoutError (ErrDrainTimeout).
	Timeout time.Duration
	// Concurrency bounds Eviction calls in flight (DefaultDrainConcurrency
	// when 0).
	Concurrency int
	// PreEvict, if set, is called for a pod carrying
	// PreEvictHookAnnotation right before its first eviction attempt (e.g.
	// to move its local data first). An error stops the drain
	// (ErrPreEvictHook) and the pod is not evicted.
	PreEvict func(ctx context.Context, pod *corev1.Pod) error
}

// DrainResult reports a drain, complete or not.
type DrainResult struct {
	Node string
	Plan *DrainPlan
	// Evicted lists accepted evictions in the order the API server
	// accepted them.
	Evicted []Eviction
	// Skipped counts pods left on the node, by reason (daemonset, mirror,
	// critical).
	Skipped map[string]int
	// Waited is the number of pods that were already terminating or
	// disappeared before their eviction.
	Waited int
	// Blocked counts 429 answers from PodDisruptionBudgets (each retried).
	Blocked int
	// Hooks is the number of PreEvict calls.
	Hooks int
	// Waves has one entry per wave of the plan, in order.
	Waves []WaveResult
	// APIRequests is the number of API requests the drain made: List,
	// watch (re)starts, Eviction calls (retries included), claim and
	// volume GETs.
	APIRequests int64
	// Duration is the wall time of Drain.
	Duration time.Duration
}

// Eviction is one accepted eviction.
type Eviction struct {
	Namespace, Name string
	Priority        int32
	LocalStorage    bool
	Wave            int
	// After is the time since the drain started; Attempts counts Eviction
	// calls for this pod (more than 1 after 429s).
	After    time.Duration
	Attempts int
}

// WaveResult times one wave: from its first eviction until each of its
// pods is gone or blocked by a PodDisruptionBudget.
type WaveResult struct {
	Priority     int32
	LocalStorage bool
	Finished     bool
	Pods         int
	Duration     time.Duration
}

// RequestsPerPod is APIRequests per pod that had to leave.
func (r *DrainResult) RequestsPerPod() float64 {
	n := r.Plan.Evictions() + len(r.Plan.Terminating)
	if n == 0 {
		return 0
	}
	return float64(r.APIRequests) / float64(n)
}

func (d *Drainer) log() *slog.Logger {
	if d.Log != nil {
		return d.Log
	}
	return slog.Default()
}

// errDeadline is the cancel cause of the drain's own timeout.
var errDeadline = errors.New("drain deadline")

// Drain evicts the node's pods per o and waits until they are gone.
//
// Wave by wave (see DrainPlan), every pod of a wave is evicted
// concurrently (at most o.Concurrency calls in flight); the next wave
// starts once each pod of this one is gone or refused by a
// PodDisruptionBudget (429) — refused pods keep being retried with
// jittered backoff (500 ms doubling to 5 s) until the timeout. For the
// wave of finished pods, only the Eviction answers are waited for, not the
// pods' removal. Pods leaving are seen through one watch on the node's
// pods; Drain returns once all pods it evicted or found terminating are
// gone.
//
// The result is returned with every error but a failed List. Errors:
// ErrDrainRefused (nothing evicted), *DrainTimeoutError (ErrDrainTimeout),
// ErrMultiplePDBs, ErrPreEvictHook, ctx's error, or an API error
// (runbooks.ErrUnavailable when the server could not be reached).
func (d *Drainer) Drain(ctx context.Context, node string, o DrainOptions) (*DrainResult, error) {
	start := time.Now()
	if o.Timeout <= 0 {
		o.Timeout = DefaultDrainTimeout
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultDrainConcurrency
	}
	rc := &requestCounter{}
	tctx, cancelT := context.WithTimeoutCause(ctx, o.Timeout, errDeadline)
	defer cancelT()
	dctx, cancel := context.WithCancelCause(tctx)
	defer cancel(nil)

	plan, err := d.plan(dctx, node, o, rc)
	if err != nil {
		return nil, err
	}
	res := &DrainResult{Node: node, Plan: plan, Skipped: map[string]int{}}
	defer func() {
		res.APIRequests = rc.get()
		res.Duration = time.Since(start)
	}()
	for _, s := range plan.Skipped {
		res.Skipped[s.Reasons[0]]++
	}
	if err := plan.Err(); err != nil {
		return res, err
	}
	log := d.log().With("node", node)
	log.Info("drain: start", "evict", plan.Evictions(), "waves", len(plan.Waves),
		"terminating", len(plan.Terminating), "skipped", len(plan.Skipped))

	r := &drainRun{d: d, o: o, rc: rc, res: res, start: start, log: log,
		cancel: cancel, sem: make(chan struct{}, o.Concurrency)}
	r.gw = newGoneWatch(d, rc, node, plan.resourceVersion)
	r.gw.fatal = cancel
	var all []*podRun
	for wi, w := range plan.Waves {
		for _, pp := range w.Pods {
			all = append(all, &podRun{pp: pp, wave: wi, local: w.LocalStorage,
				gone: r.gw.track(pp.Namespace, pp.Name, pp.UID), blocked: make(chan struct{}), settled: make(chan struct{})})
		}
	}
	var waitOnly []*podRun
	for _, pp := range plan.Terminating {
		waitOnly = append(waitOnly, &podRun{pp: pp, wave: -1, gone: r.gw.track(pp.Namespace, pp.Name, pp.UID)})
	}
	res.Waited = len(waitOnly)

	var bg sync.WaitGroup
	bg.Go(func() { r.gw.run(dctx) })
	defer func() {
		cancel(nil) // stops the watch and the retries still running
		bg.Wait()
	}()

	// Evict only once pods can be seen leaving.
	select {
	case <-r.gw.ready:
	case <-dctx.Done():
	}
	next := 0
	for wi, w := range plan.Waves {
		if dctx.Err() != nil {
			break
		}
		wstart := time.Now()
		wave := all[next : next+len(w.Pods)]
		next += len(w.Pods)
		for _, p := range wave {
			bg.Go(func() {
				defer close(p.settled)
				r.evict(dctx, p)
			})
		}
		for _, p := range wave {
			// Finished pods: only until the eviction is answered.
			gone := p.gone
			if w.Finished {
				gone = p.settled
			}
			select {
			case <-gone:
			case <-p.blocked:
			case <-dctx.Done():
			}
		}
		res.Waves = append(res.Waves, WaveResult{Priority: w.Priority, LocalStorage: w.LocalStorage,
			Finished: w.Finished, Pods: len(w.Pods), Duration: time.Since(wstart)})
		log.Debug("drain: wave done", "wave", wi+1, "priority", w.Priority, "local", w.LocalStorage,
			"pods", len(w.Pods), "took", time.Since(wstart))
	}
	for _, p := range append(all, waitOnly...) {
		select {
		case <-p.gone:
		case <-dctx.Done():
		}
	}
	var fail error
	if dctx.Err() != nil {
		fail = r.failure(ctx, dctx, node, append(all, waitOnly...))
	}
	cancel(nil)
	bg.Wait() // every goroutine has written its part of res
	if fail != nil {
		return res, fail
	}
	log.Info("drain: done", "evicted", len(res.Evicted), "requests", rc.get(), "took", time.Since(start))
	return res, nil
}

// failure turns the drain context's end into the error to return.
func (r *drainRun) failure(parent, dctx context.Context, node string, pods []*podRun) error {
	cause := context.Cause(dctx)
	switch {
	case parent.Err() != nil:
		return fmt.Errorf("drain node %s: %w", node, context.Cause(parent))
	case !errors.Is(cause, errDeadline):
		return cause
	}
	te := &DrainTimeoutError{Node: node, Timeout: r.o.Timeout}
	for _, p := range pods {
		select {
		case <-p.gone:
			continue
		default:
		}
		p.mu.Lock()
		te.Remaining = append(te.Remaining, RemainingPod{Namespace: p.pp.Namespace, Name: p.pp.Name,
			PDB: p.pdb, BlockedBy: p.blockedBy, Evicted: p.evicted || p.wave < 0})
		p.mu.Unlock()
	}
	r.log.Warn("drain: timed out", "remaining", len(te.Remaining), "err", te)
	return te
}

// drainRun is the state of one Drain call.
type drainRun struct {
	d      *Drainer
	o      DrainOptions
	rc     *requestCounter
	gw     *goneWatch
	log    *slog.Logger
	start  time.Time
	cancel context.CancelCauseFunc
	sem    chan struct{}

	mu  sync.Mutex
	res *DrainResult
}

// podRun is one pod being evicted or waited for.
type podRun struct {
	pp      PlannedPod
	wave    int // -1: only waited for
	local   bool
	gone    <-chan struct{}
	blocked chan struct{} // closed at the first PDB refusal
	settled chan struct{} // closed when evict returns

	mu        sync.Mutex
	pdb       string
	blockedBy string
	evicted   bool
}

// evict runs the pod's hook, then calls Eviction until it is accepted,
// the pod is gone, or the drain ends.
func (r *drainRun) evict(ctx context.Context, p *podRun) {
	if ctx.Err() != nil {
		return
	}
	if p.pp.Hook != "" {
		if r.o.PreEvict == nil {
			r.log.Warn("drain: pod names a pre-evict hook but none is configured; evicting anyway",
				"pod", p.pp.Ref(), "hook", p.pp.Hook)
		} else {
			r.mu.Lock()
			r.res.Hooks++
			r.mu.Unlock()
			if err := r.o.PreEvict(ctx, p.pp.pod); err != nil {
				if ctx.Err() == nil {
					r.cancel(fmt.Errorf("%w: pod %s, hook %q: %w", ErrPreEvictHook, p.pp.Ref(), p.pp.Hook, err))
				}
				return
			}
		}
	}
	var (
		bo       backoff
		attempts int
		blocked  bool
	)
	for {
		select {
		case r.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		if ctx.Err() != nil {
			<-r.sem
			return
		}
		attempts++
		outcome, pdb, err := r.d.evictOnce(ctx, p.pp, r.rc)
		<-r.sem
		if ctx.Err() != nil && outcome != evictDone && outcome != evictGone {
			return
		}
		switch outcome {
		case evictDone:
			p.mu.Lock()
			p.evicted = true
			p.mu.Unlock()
			r.mu.Lock()
			r.res.Evicted = append(r.res.Evicted, Eviction{Namespace: p.pp.Namespace, Name: p.pp.Name,
				Priority: p.pp.Priority, LocalStorage: p.local, Wave: p.wave,
				After: time.Since(r.start), Attempts: attempts})
			r.mu.Unlock()
			r.log.Debug("drain: evicted", "pod", p.pp.Ref(), "attempts", attempts)
			return
		case evictGone:
			r.mu.Lock()
			r.res.Waited++
			r.mu.Unlock()
			return
		case evictBlocked:
			p.mu.Lock()
			p.pdb, p.blockedBy = pdb, err.Error()
			p.mu.Unlock()
			r.mu.Lock()
			r.res.Blocked++
			r.mu.Unlock()
			if !blocked {
				blocked = true
				close(p.blocked)
				r.log.Info("drain: eviction refused by a PodDisruptionBudget; retrying", "pod", p.pp.Ref(), "pdb", pdb, "err", err)
			}
		case evictRetry:
			r.log.Debug("drain: eviction will be retried", "pod", p.pp.Ref(), "err", err)
		default:
			r.cancel(err)
			return
		}
		if !bo.sleep(ctx) {
			return
		}
	}
}
