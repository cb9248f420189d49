package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/node-healer/node-healer/internal/queue"
	"github.com/node-healer/node-healer/internal/runbooks"
)

const (
	// fieldManager is the field manager of node-healer's node writes
	// (internal/kube): its managedFields time says when node-healer last
	// changed the node, i.e. when the mark was written at the latest.
	fieldManager = "node-healer"
	// markPrecision: managedFields and taint times have one-second precision.
	markPrecision = time.Second
)

// Finding kinds: what became of the run that marked the node.
const (
	lostRecord = "record_missing"
	runFailed  = "failed"
	cancelled  = "cancelled"
)

// view is what the node check reads of a node: from the cache when
// looking, from the API server (with the cache's taints) when acting.
type view struct {
	name          string
	unschedulable bool
	outOfService  bool
	labels        map[string]string
	annotations   map[string]string
}

// finding is a node carrying node-healer's marks that nothing will finish.
type finding struct {
	node, owner, kind, reason string
	fence                     string
	outOfService              bool
	markAt                    time.Time // zero: unknown
}

func (f *finding) key() string { return f.node + "|" + f.owner + "|" + f.kind }

// nodes escalates nodes node-healer marked (cordon ownership, the
// out-of-service taint) whose run is gone or final without undoing them.
func (r *Reconciler) nodes(ctx context.Context, now time.Time, refs *queue.Refs, rep *Report) error {
	if !r.Nodes.Synced() {
		return errors.New("node cache not synced with the API server: marked nodes not checked")
	}
	list, err := r.Nodes.List()
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	var found []*finding
	var errs []error
	for _, n := range list {
		v := viewOf(n)
		f, err := r.classify(ctx, v, refs)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if f != nil {
			f.markAt = markTime(n)
			found = append(found, f)
		}
	}
	firstSeen, err := r.suspects(ctx, now, found)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, f := range found {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !r.due(now, f, firstSeen[f.key()]) {
			rep.Waiting++
			continue
		}
		done, err := r.escalate(ctx, f)
		if err != nil {
			errs = append(errs, err)
			r.Log.Error("reconcile: could not escalate a node node-healer left marked; retried next interval",
				"node", f.node, "run", f.owner, "err", err)
			continue
		}
		if done {
			rep.Escalated = append(rep.Escalated, f.node)
		}
	}
	return errors.Join(errs...)
}

// classify tells whether the node is an orphan: marked by a run that no
// stream entry leads to and whose record is gone, failed or cancelled.
func (r *Reconciler) classify(ctx context.Context, v view, refs *queue.Refs) (*finding, error) {
	owner := v.annotations[runbooks.AnnotationCordonedBy]
	switch {
	case owner == "":
		return nil, nil
	case !v.unschedulable && !v.outOfService:
		return nil, nil // uncordoned by hand: the leftover annotation marks nothing
	case r.ExcludeLabel != "" && v.labels[r.ExcludeLabel] == "true":
		return nil, nil // opted out: never touched
	case v.annotations[runbooks.AnnotationEscalatedBy] == owner:
		return nil, nil // already handed to a human (who may have removed the label)
	case refs.Has(owner):
		return nil, nil // a worker will be handed the run
	}
	f := &finding{node: v.name, owner: owner, fence: v.annotations[runbooks.AnnotationFence], outOfService: v.outOfService}
	run, err := r.Runs.Load(ctx, owner)
	switch {
	case errors.Is(err, runbooks.ErrRunNotFound):
		f.kind = lostRecord
		f.reason = fmt.Sprintf("node cordoned by run %s, whose record is gone (Redis lost state?); node-healer will not guess where it stopped", owner)
	case err != nil:
		return nil, fmt.Errorf("node %s: load run %s: %w", v.name, owner, err)
	case run.Status == runbooks.StatusFailed:
		f.kind = runFailed
		f.reason = fmt.Sprintf("run %s (%s) failed and left the node cordoned; node-healer does not retry a failed run: %s", owner, run.Runbook, run.Error)
	case run.Status == runbooks.StatusCancelled:
		f.kind = cancelled
		f.reason = fmt.Sprintf("run %s (%s) was cancelled but its cordon was not undone", owner, run.Runbook)
	default:
		// Not final: a worker (or the re-queue above) finishes it. Succeeded:
		// every step ran, so what it left is by design (cordon, drain).
		// Escalated: the run handed the node to a human itself.
		return nil, nil
	}
	if f.outOfService {
		f.reason += "; the node is tainted " + runbooks.TaintOutOfService + " (fenced): confirm it is powered off before removing the taint"
	}
	return f, nil
}

// due: the mark is older than the grace period and the finding has
// stood, pass after pass, for the grace period less one interval — long
// enough for a live worker whose lease Redis lost to stop and save its
// run again, which ends the finding.
func (r *Reconciler) due(now time.Time, f *finding, first time.Time) bool {
	need := r.Grace - r.Interval
	if f.markAt.IsZero() {
		need = r.Grace // no write time on the node: count from the first sighting
	} else if now.Sub(f.markAt) < r.Grace {
		return false
	}
	// Passes start on a ticker; allow for its jitter.
	return now.Sub(first) >= need-r.Interval/10
}

// suspects records when each finding was first seen (shared by every
// replica, in Redis), forgets findings that went away, and returns the
// first sightings.
func (r *Reconciler) suspects(ctx context.Context, now time.Time, found []*finding) (map[string]time.Time, error) {
	key := r.Prefix + ":reconcile:suspects"
	known, err := r.Redis.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("reconcile suspects: %w", err)
	}
	out := make(map[string]time.Time, len(found))
	pipe := r.Redis.TxPipeline()
	for _, f := range found {
		k := f.key()
		if ms, err := strconv.ParseInt(known[k], 10, 64); err == nil {
			out[k] = time.UnixMilli(ms)
		} else {
			out[k] = now
			pipe.HSet(ctx, key, k, now.UnixMilli())
			r.Log.Info("reconcile: node carries node-healer's marks but no run will finish them; it is escalated to a human unless that changes",
				"node", f.node, "run", f.owner, "finding", f.kind, "fence", f.fence, "out_of_service", f.outOfService,
				"escalate_after", r.Grace, "reason", f.reason)
		}
		delete(known, k)
	}
	for k := range known {
		pipe.HDel(ctx, key, k)
	}
	if len(found) > 0 {
		pipe.Expire(ctx, key, 24*time.Hour)
	}
	if _, err := pipe.Exec(ctx); err != nil { // nothing to send: no round trip, no error
		return nil, fmt.Errorf("reconcile suspects: %w", err)
	}
	return out, nil
}

// escalate hands the node to a human, holding the node's lease, after
// checking the finding again against the API server and Redis. The node
// keeps its state: nothing is uncordoned or untainted on a guess.
func (r *Reconciler) escalate(ctx context.Context, f *finding) (bool, error) {
	done := false
	held, err := r.withNode(ctx, f.node, func(ctx context.Context) error {
		n, err := r.Kube.GetNode(ctx, f.node)
		if errors.Is(err, runbooks.ErrNodeNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		refs, err := r.Stream.Refs(ctx)
		if err != nil {
			return err
		}
		cur, err := r.classify(ctx, view{name: n.Name, unschedulable: n.Unschedulable, outOfService: f.outOfService,
			labels: n.Labels, annotations: n.Annotations}, refs)
		if err != nil || cur == nil || cur.key() != f.key() {
			return err // changed since the cache was read: looked at again next pass
		}
		if r.DryRun {
			r.Log.Warn("RECONCILE (dry run): would escalate the node to a human", "node", f.node, "run", f.owner, "reason", f.reason)
			return nil
		}
		short := f.reason
		if len(short) > 250 {
			short = short[:250]
		}
		owner := f.owner
		// Decided on this resourceVersion: a node changed meanwhile is a
		// conflict, and the finding is looked at again next pass.
		err = r.Kube.SetUnschedulable(ctx, n.Name, n.ResourceVersion, n.Unschedulable,
			map[string]*string{runbooks.AnnotationNeedsAttention: &short, runbooks.AnnotationEscalatedBy: &owner})
		if errors.Is(err, runbooks.ErrConflict) {
			r.Log.Debug("reconcile: node changed while escalating; looked at again next pass", "node", f.node)
			return nil
		}
		if errors.Is(err, runbooks.ErrStaleFence) {
			// Only a holder after this one can have written a higher fence,
			// or Redis's fence counter and clock both went back.
			return fmt.Errorf("node %s carries a newer fence than the reconciler's lease; not escalated (%w)", f.node, err)
		}
		if err != nil {
			return err
		}
		yes := "true"
		if err := r.Kube.Annotate(ctx, n.Name, nil, map[string]*string{runbooks.LabelNeedsAttention: &yes}); err != nil {
			return err
		}
		_ = r.Kube.Event(ctx, n.Name, "Warning", "NodeHealerEscalated", "node-healer needs a human: "+f.reason+
			". The node was left as it is; check it, uncordon it yourself when it is healthy, then remove the label "+runbooks.LabelNeedsAttention)
		r.Log.LogAttrs(ctx, slog.LevelInfo, "audit", slog.Bool("audit", true), slog.String("action", "escalate"),
			slog.String("node", n.Name), slog.String("run", owner), slog.String("step", "reconcile"), slog.String("detail", f.reason))
		done = true
		return nil
	})
	if err != nil || !held || !done {
		if err == nil && !held {
			r.Log.Debug("reconcile: marked node is locked (a worker is on it); left alone", "node", f.node, "run", f.owner)
		}
		return false, err
	}
	r.orphan(KindNodeEscalated)
	r.Log.Warn("RECONCILE: node escalated to a human: node-healer left it marked and nothing will finish the run. It stays as it is (cordoned, and tainted if out_of_service); check the node, uncordon it yourself when it is healthy, then remove the label "+runbooks.LabelNeedsAttention,
		"node", f.node, "run", f.owner, "finding", f.kind, "fence", f.fence, "out_of_service", f.outOfService, "reason", f.reason)
	return true, nil
}

func viewOf(n *corev1.Node) view {
	v := view{name: n.Name, unschedulable: n.Spec.Unschedulable, labels: n.Labels, annotations: n.Annotations}
	for _, t := range n.Spec.Taints {
		if t.Key == runbooks.TaintOutOfService {
			v.outOfService = true
		}
	}
	return v
}

// markTime is when node-healer last wrote to the node (its managedFields
// entry, or the out-of-service taint's timeAdded), rounded up; zero when
// neither is known.
func markTime(n *corev1.Node) time.Time {
	var t time.Time
	for _, mf := range n.ManagedFields {
		if mf.Manager == fieldManager && mf.Time != nil && mf.Time.After(t) {
			t = mf.Time.Time
		}
	}
	for _, tn := range n.Spec.Taints {
		if tn.Key == runbooks.TaintOutOfService && tn.TimeAdded != nil && tn.TimeAdded.After(t) {
			t = tn.TimeAdded.Time
		}
	}
	if t.IsZero() {
		return t
	}
	return t.Add(markPrecision)
}
