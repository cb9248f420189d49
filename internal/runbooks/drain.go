package runbooks

import (
	"context"
	"errors"
	"fmt"
)

// Drain evicts the node's pods when its kubelet is responsive. On a
// drain timeout the run escalates (the node stays cordoned and is not
// rebooted) unless the route sets force_after_timeout.
func Drain(ctx context.Context, x *Exec) (Outcome, string, error) {
	if x.Deps.Drain == nil || x.Status == nil {
		return "", "", errors.New("drain: no Kubernetes drainer configured")
	}
	st, err := x.Status.Status(ctx, x.Run.Node)
	if err != nil {
		return "", "", err
	}
	if !st.Responsive(x.Now(), x.duration("lease_max_age")) {
		x.Run.SetPrior("drain", "skipped-unresponsive")
		return OutcomeSkipped, fmt.Sprintf("node unresponsive (Ready=%s, Lease renewed %s): nothing can leave gracefully; not draining", orNone(st.Ready), age(x, st)), nil
	}
	spec := DrainSpec{Timeout: x.duration("drain_timeout"), DeleteEmptyDirData: x.flag("delete_emptydir_data"),
		Force: x.flag("force_unmanaged"), EvictCritical: x.flag("evict_critical"), DryRun: x.DryRun}
	rep, err := x.Deps.Drain.Drain(ctx, x.Run.Node, spec)
	if errors.Is(err, ErrDrainTimeout) {
		if x.flag("force_after_timeout") {
			x.Run.SetPrior("drain", "timed-out-forced")
			x.Audit(ctx, "drain", "timed out; continuing (force_after_timeout): "+err.Error())
			return OutcomeDone, "drain timed out; continuing because the route sets force_after_timeout: " + err.Error(), nil
		}
		return "", "", Escalate("drain did not finish within %s (%v); the node stays cordoned and is not rebooted", spec.Timeout, err)
	}
	if err != nil {
		return "", "", err
	}
	if x.DryRun {
		return OutcomeDryRun, "would drain: " + rep.Summary, nil
	}
	x.Run.SetPrior("drain", "done")
	x.Audit(ctx, "drain", rep.Summary)
	_ = x.Nodes.Event(ctx, x.Run.Node, "Normal", "NodeHealerDrain", fmt.Sprintf("node-healer run %s: drained: %s", x.Run.ID, rep.Summary))
	return OutcomeDone, rep.Summary, nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func age(x *Exec, st *NodeStatus) string {
	if st.LeaseRenewed.IsZero() {
		return "never"
	}
	return since(x.Now(), st.LeaseRenewed).String() + " ago"
}
