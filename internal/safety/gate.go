package safety

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/locks"
	"github.com/node-healer/node-healer/internal/runbooks"
)

// Limits are the configured caps.
type Limits struct {
	MaxRuns             int           // concurrent runs cluster-wide
	MaxControlPlaneRuns int           // concurrent runs on control-plane nodes
	Reboots             locks.Limit   // reboots/power-cycles cluster-wide
	NodeRuns            int           // runs per node per NodeWindow, then a human
	NodeWindow          time.Duration //
	BreakerPercent      float64       // open above this share of unhealthy nodes (0: off)
	BreakerNodes        int           // open above this many unhealthy nodes (0: off)
	BreakerMinNodes     int           // never open with fewer unhealthy nodes than this
	BreakerHold         time.Duration // stays open until under the threshold this long
	BreakerGroupBy      string        // node label: the threshold also applies per value (failure domain)
	Settle              time.Duration // a new run waits this long after its alert arrived
	SlotTTL             time.Duration // a crashed holder's slot frees after this
	ExcludeLabel        string        // node label (=true) that opts a node out
}

// NodeInfo is what the gate knows of a node.
type NodeInfo struct {
	Name         string
	Ready        bool
	ControlPlane bool
	Labels       map[string]string
	Taints       []Taint           // spec.taints
	Annotations  map[string]string // metadata.annotations
	Deleting     bool              // metadata.deletionTimestamp is set
}

// NodeLister lists the cluster's nodes (from an informer cache).
type NodeLister interface {
	ListNodes() ([]NodeInfo, error)
}

// SilenceChecker tells whether Alertmanager silences hold a run.
type SilenceChecker interface {
	Check(ctx context.Context, alertLabels map[string]string, node string) (Hold, error)
}

// Windows returns a route's maintenance windows (none: always open).
type Windows func(route string) []MaintenanceWindow

// Gate implements runbooks.Gate on Redis.
type Gate struct {
	L        Limits
	Redis    redis.UniversalClient
	Prefix   string
	Slots    *locks.Slots
	Rate     *locks.RateLimiter
	Window   *locks.Window
	Silences SilenceChecker // nil: silences are not checked (warned at start)
	// SilencesFresh, if set, is asked before destructive steps instead of
	// Silences: no cache, so a silence added a moment ago still counts.
	SilencesFresh SilenceChecker
	Nodes         NodeLister
	// NodeListCache > 0: Admit reuses a node list younger than this
	// (Destructive always lists afresh). Admission runs for every queued
	// run — thousands a second in a storm — and each list converts every
	// node in the cache; the breaker reuses its evaluation for a second
	// already, and the informer behind the list lags by as much.
	NodeListCache time.Duration
	Firing        *Firing
	Windows       Windows
	// Alerts, if set, cancels a run before a destructive step once its
	// alert resolved (Alertmanager sent the resolved notification).
	Alerts runbooks.AlertState
	// Checks are asked before every destructive step (gates, hooks; see
	// checks.go); RouteChecks adds a route's own.
	Checks      []Check
	RouteChecks RouteChecks
	Log         *slog.Logger
	Now         func() time.Time

	once    sync.Once
	breaker *Breaker

	snapMu sync.Mutex
	snap   *nodeSnapshot
}

// nodeSnapshot is a node list and its index by name.
type nodeSnapshot struct {
	at     time.Time
	nodes  []NodeInfo
	byName map[string]int
}

var _ runbooks.Gate = (*Gate)(nil)

// Pools and keys.
const (
	poolRuns         = "runs"
	poolControlPlane = "control-plane"
	rateReboots      = "reboots"
	priorBudget      = "reboot_budget"
)

// rebootSteps consume the reboot budget.
var rebootSteps = []string{"soft-reboot", "power-cycle", "power-off"}

func (g *Gate) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

// Breaker returns the gate's breaker (built on first use).
func (g *Gate) Breaker() *Breaker {
	g.once.Do(func() { g.breaker = &Breaker{g: g, kick: make(chan struct{}, 1)} })
	return g.breaker
}

func holder(run *runbooks.Run) string { return run.ID + "/" + run.Node }

func deny(kind, format string, a ...any) runbooks.Decision {
	return runbooks.Decision{Kind: kind, Reason: fmt.Sprintf(format, a...)}
}

var allow = runbooks.Decision{Allow: true}

// common are the checks of both Admit and Destructive.
func (g *Gate) common(ctx context.Context, run *runbooks.Run, node *NodeInfo, destructive bool) (runbooks.Decision, error) {
	p, err := Paused(ctx, g.Redis, g.Prefix)
	if err != nil {
		return runbooks.Decision{}, fmt.Errorf("read pause state: %w", err)
	}
	if p != nil {
		return deny("paused", "node-healer is paused by %s since %s: %s (receiver resume)", p.By, p.Since.Format(time.RFC3339), p.Reason), nil
	}
	if node != nil && g.L.ExcludeLabel != "" && node.Labels[g.L.ExcludeLabel] == "true" {
		return deny("excluded", "node %s is opted out (label %s=true)", run.Node, g.L.ExcludeLabel), nil
	}
	sil := g.Silences
	if destructive && g.SilencesFresh != nil {
		sil = g.SilencesFresh
	}
	if sil != nil {
		h, err := sil.Check(ctx, run.Labels, run.Node)
		if err != nil {
			return deny("alertmanager_unreachable", "cannot read Alertmanager silences (%v): holding until they can be read", err), nil
		}
		if h.Held {
			return runbooks.Decision{Kind: "silenced", Reason: h.Reason, RetryAt: h.Until}, nil
		}
	}
	return allow, nil
}

func (g *Gate) node(name string) (*NodeInfo, []NodeInfo, error) {
	if g.Nodes == nil {
		return nil, nil, nil
	}
	nodes, err := g.Nodes.ListNodes()
	if err != nil {
		return nil, nil, err
	}
	for i := range nodes {
		if nodes[i].Name == name {
			return &nodes[i], nodes, nil
		}
	}
	return nil, nodes, nil
}

// admitNode is node for Admit: from a list younger than NodeListCache.
func (g *Gate) admitNode(name string) (*NodeInfo, []NodeInfo, error) {
	if g.NodeListCache <= 0 || g.Nodes == nil {
		return g.node(name)
	}
	g.snapMu.Lock()
	s := g.snap
	g.snapMu.Unlock()
	if s == nil || time.Since(s.at) >= g.NodeListCache {
		at := time.Now()
		nodes, err := g.Nodes.ListNodes()
		if err != nil {
			return nil, nil, err
		}
		s = &nodeSnapshot{at: at, nodes: nodes, byName: make(map[string]int, len(nodes))}
		for i := range nodes {
			s.byName[nodes[i].Name] = i
		}
		g.snapMu.Lock()
		g.snap = s
		g.snapMu.Unlock()
	}
	i, ok := s.byName[name]
	if !ok {
		return nil, s.nodes, nil
	}
	n := s.nodes[i] // a copy: the snapshot is shared
	return &n, s.nodes, nil
}

// Admit implements runbooks.Gate.
func (g *Gate) Admit(ctx context.Context, run *runbooks.Run) (runbooks.Decision, error) {
	node, nodes, err := g.admitNode(run.Node)
	if err != nil {
		return runbooks.Decision{}, fmt.Errorf("list nodes: %w", err)
	}
	if d, err := g.common(ctx, run, node, false); err != nil || !d.Allow {
		return d, err
	}
	if d, err := g.admissionChecks(ctx, run, node); err != nil || !d.Allow {
		return d, err
	}
	if !run.Admitted {
		if g.L.Settle > 0 {
			if age := g.now().Sub(run.Created); age < g.L.Settle {
				return runbooks.Decision{Kind: "settle", Reason: fmt.Sprintf("waiting %s after the alert arrived, so that an alert storm is seen whole", g.L.Settle),
					RetryAt: run.Created.Add(g.L.Settle)}, nil
			}
		}
		st, err := g.Breaker().EvaluateCached(ctx, nodes)
		if err != nil {
			return runbooks.Decision{}, fmt.Errorf("blast-radius breaker: %w", err)
		}
		if st.Open {
			return deny("breaker", "blast-radius breaker open: %d of %d nodes unhealthy or under remediation (threshold %s); starting nothing new",
				st.Unhealthy, st.Total, st.Threshold), nil
		}
		if node != nil {
			if grp, open := st.OpenGroup(node.Labels); open {
				return deny("breaker", "blast-radius breaker open for %s=%q: %d of %d nodes there unhealthy or under remediation (threshold %s); starting nothing new in that failure domain",
					st.GroupBy, grp.Value, grp.Unhealthy, grp.Total, st.Threshold), nil
			}
		}
		if g.L.NodeRuns > 0 && !run.DryRun {
			n, err := g.Window.Count(ctx, nodeRunsKey(run.Node), g.L.NodeWindow)
			if err != nil {
				return runbooks.Decision{}, fmt.Errorf("per-node run count: %w", err)
			}
			if n >= g.L.NodeRuns {
				return runbooks.Decision{Kind: "node_cap", Escalate: true,
					Reason: fmt.Sprintf("%d runs on this node within %s already (cap %d): a human must look instead of another run", n, g.L.NodeWindow, g.L.NodeRuns)}, nil
			}
		}
	}
	if run.DryRun {
		// A dry run changes nothing: it takes no slot, no reboot token and
		// does not count toward the per-node cap, so it never blocks or
		// escalates a real run.
		return allow, nil
	}
	if node != nil && node.ControlPlane {
		d, err := g.quorum(ctx, run, nodes)
		if err != nil || !d.Allow {
			return d, err
		}
		limit := g.controlPlaneCap(nodes)
		ok, held, err := g.Slots.Acquire(ctx, poolControlPlane, holder(run), limit, g.L.SlotTTL)
		if err != nil {
			return runbooks.Decision{}, fmt.Errorf("control-plane slot: %w", err)
		}
		if !ok {
			return runbooks.Decision{Kind: "control_plane", Reason: fmt.Sprintf("%d control-plane run(s) already going (cap %d)", held, limit), RetryAt: g.now().Add(g.L.SlotTTL / 3)}, nil
		}
	}
	ok, held, err := g.Slots.Acquire(ctx, poolRuns, holder(run), g.L.MaxRuns, g.L.SlotTTL)
	if err != nil || !ok {
		if node != nil && node.ControlPlane && !run.Admitted {
			_ = g.Slots.Release(context.WithoutCancel(ctx), poolControlPlane, holder(run))
		}
		if err != nil {
			return runbooks.Decision{}, fmt.Errorf("run slot: %w", err)
		}
		return runbooks.Decision{Kind: "concurrency", Reason: fmt.Sprintf("%d run(s) already going cluster-wide (cap %d)", held, g.L.MaxRuns), RetryAt: g.now().Add(g.L.SlotTTL / 3)}, nil
	}
	if !run.Admitted && g.L.NodeRuns > 0 {
		if _, err := g.Window.Record(ctx, nodeRunsKey(run.Node), run.ID, g.L.NodeWindow); err != nil {
			g.Done(ctx, run)
			return runbooks.Decision{}, fmt.Errorf("record the run: %w", err)
		}
	}
	return allow, nil
}

// controlPlaneCap is how many control-plane runs may go at once: the
// configured cap, but never more than etcd can lose and keep quorum
// (one member per control-plane node: n - (n/2+1)), and at least 1 so a
// lone broken control-plane node in a large cluster is still healed (the
// quorum check decides that).
func (g *Gate) controlPlaneCap(nodes []NodeInfo) int {
	total := 0
	for _, n := range nodes {
		if n.ControlPlane {
			total++
		}
	}
	return max(1, min(g.L.MaxControlPlaneRuns, total-(total/2+1)))
}

// quorum refuses a control-plane run that would leave etcd without a
// majority of healthy members (one control-plane node per etcd member).
// A control-plane node counts as unavailable when it is not Ready or when
// another run holds a control-plane slot for it (admitted or running: it
// may be drained or rebooting at any moment).
func (g *Gate) quorum(ctx context.Context, run *runbooks.Run, nodes []NodeInfo) (runbooks.Decision, error) {
	holders, err := g.Slots.Holders(ctx, poolControlPlane)
	if err != nil {
		return runbooks.Decision{}, fmt.Errorf("control-plane runs: %w", err)
	}
	busy := map[string]bool{}
	for _, h := range holders {
		if h != holder(run) {
			if _, n, ok := strings.Cut(h, "/"); ok {
				busy[n] = true
			}
		}
	}
	return quorumOf(run, nodes, busy), nil
}

// quorumOf is the quorum arithmetic; busy names control-plane nodes other
// runs hold.
func quorumOf(run *runbooks.Run, nodes []NodeInfo, busy map[string]bool) runbooks.Decision {
	total, healthy := 0, 0
	var down []string
	for _, n := range nodes {
		if !n.ControlPlane {
			continue
		}
		total++
		switch {
		case n.Name == run.Node:
		case !n.Ready:
			down = append(down, n.Name+" NotReady")
		case busy[n.Name]:
			down = append(down, n.Name+" under remediation")
		default:
			healthy++
		}
	}
	need := total/2 + 1
	if healthy < need {
		return deny("quorum", "taking control-plane node %s would leave %d of %d control-plane nodes healthy (%s); etcd needs %d",
			run.Node, healthy, total, strings.Join(down, ", "), need)
	}
	return allow
}

// Destructive implements runbooks.Gate.
func (g *Gate) Destructive(ctx context.Context, run *runbooks.Run, step string) (runbooks.Decision, error) {
	node, nodes, err := g.node(run.Node)
	if err != nil {
		return runbooks.Decision{}, fmt.Errorf("list nodes: %w", err)
	}
	if d, err := g.common(ctx, run, node, true); err != nil || !d.Allow {
		return d, err
	}
	if node != nil && node.ControlPlane && !run.DryRun {
		// Again before every destructive step: another control-plane node
		// may have gone NotReady since this run was admitted.
		if d, err := g.quorum(ctx, run, nodes); err != nil || !d.Allow {
			return d, err
		}
	}
	if g.Alerts != nil && run.Fingerprint != "" {
		resolved, at, err := g.Alerts.Resolved(ctx, run.Fingerprint)
		if err != nil {
			return runbooks.Decision{}, fmt.Errorf("alert state: %w", err)
		}
		if resolved && !at.Before(run.AlertStart) {
			return runbooks.Decision{Kind: "resolved", Cancel: true, Reason: "the alert resolved at " + at.Format(time.RFC3339)}, nil
		}
	}
	if g.Windows != nil {
		if ws := g.Windows(run.Route); len(ws) > 0 {
			open, next := Open(ws, g.now())
			if !open {
				return runbooks.Decision{Kind: "window", Reason: fmt.Sprintf("outside the route's maintenance windows; next opens %s", next.Format(time.RFC3339)), RetryAt: next}, nil
			}
		}
	}
	if d, err := g.checks(ctx, run, step, node); err != nil || !d.Allow {
		return d, err
	}
	if slices.Contains(rebootSteps, step) && run.Prior[priorBudget] == "" && !run.DryRun {
		res, err := g.Rate.Allow(ctx, rateReboots, g.L.Reboots)
		if err != nil {
			return runbooks.Decision{}, fmt.Errorf("reboot rate limit: %w", err)
		}
		if !res.Allowed {
			next := g.now().Add(res.RetryAfter)
			return runbooks.Decision{Kind: "rate", RetryAt: next,
				Reason: fmt.Sprintf("cluster-wide reboot budget used (%d per %s); next reboot allowed at %s", g.L.Reboots.Rate, g.L.Reboots.Period, next.Format(time.RFC3339))}, nil
		}
		run.SetPrior(priorBudget, "taken")
	}
	return allow, nil
}

// Refresh implements runbooks.Gate.
func (g *Gate) Refresh(ctx context.Context, run *runbooks.Run) error {
	err := g.Slots.Refresh(ctx, poolRuns, holder(run), g.L.SlotTTL)
	if err != nil {
		return err
	}
	if err := g.Slots.Refresh(ctx, poolControlPlane, holder(run), g.L.SlotTTL); err != nil && !errors.Is(err, locks.ErrSlotLost) {
		return err
	}
	return nil
}

// Done implements runbooks.Gate.
func (g *Gate) Done(ctx context.Context, run *runbooks.Run) {
	ctx = context.WithoutCancel(ctx)
	for _, pool := range []string{poolRuns, poolControlPlane} {
		if err := g.Slots.Release(ctx, pool, holder(run)); err != nil && !errors.Is(err, locks.ErrSlotLost) {
			g.Log.Warn("could not release a slot; it frees itself after its TTL", "pool", pool, "run", run.ID, "err", err, "ttl", g.L.SlotTTL)
		}
	}
}

// ActiveRuns lists the runs holding a slot: "runID/node".
func (g *Gate) ActiveRuns(ctx context.Context) ([]string, error) {
	return g.Slots.Holders(ctx, poolRuns)
}

func nodesOfHolders(hs []string) []string {
	out := make([]string, 0, len(hs))
	for _, h := range hs {
		if _, n, ok := strings.Cut(h, "/"); ok {
			out = append(out, n)
		}
	}
	return out
}
