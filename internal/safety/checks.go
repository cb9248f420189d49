package safety

import (
	"context"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// Check is one more question asked of the cluster before every
// destructive step, after the built-in ones (pause, silences, quorum,
// windows) and before the reboot budget is taken: a PromQL gate, an
// alert gate, blocking pods, another actor's marks on the node, a
// blocking hook. A Decision that does not Allow holds the run with its
// Kind and Reason (or defers, cancels or escalates it, as Decision
// says). An error holds it too (fail closed, kind gate_error); when the
// cause is known (Prometheus unreachable…) return a Decision with a
// clear Reason and a Kind of its own instead.
type Check interface {
	// Name identifies the check in logs and in hold reasons.
	Name() string
	// Check decides for run before step on node (nil: the node is not in
	// the cache).
	Check(ctx context.Context, run *runbooks.Run, step string, node *NodeInfo) (runbooks.Decision, error)
}

// AdmissionCheck is a Check also asked when a run is admitted, before
// any of its steps (even the cordon): another actor's marks on the node,
// a node being deleted.
type AdmissionCheck interface {
	Check
	AtAdmission() bool
}

// admissionChecks asks the checks that apply before a run starts.
func (g *Gate) admissionChecks(ctx context.Context, run *runbooks.Run, node *NodeInfo) (runbooks.Decision, error) {
	for _, c := range g.Checks {
		if ac, ok := c.(AdmissionCheck); ok && ac.AtAdmission() {
			d, err := c.Check(ctx, run, "", node)
			if err != nil || !d.Allow {
				return d, err
			}
		}
	}
	return allow, nil
}

// RouteChecks returns the checks of a run's route (the global ones are
// Gate.Checks); nil for none.
type RouteChecks func(route string) []Check

func (g *Gate) checks(ctx context.Context, run *runbooks.Run, step string, node *NodeInfo) (runbooks.Decision, error) {
	all := g.Checks
	if g.RouteChecks != nil {
		all = append(all[:len(all):len(all)], g.RouteChecks(run.Route)...)
	}
	for _, c := range all {
		d, err := c.Check(ctx, run, step, node)
		if err != nil {
			return runbooks.Decision{}, err
		}
		if !d.Allow {
			return d, nil
		}
	}
	return allow, nil
}
