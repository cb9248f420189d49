package runbooks

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Out-of-service taint (Kubernetes non-graceful node shutdown): lets
// stateful pods and their volumes move off a node that is known to be off.
const (
	TaintOutOfService       = "node.kubernetes.io/out-of-service"
	taintOutOfServiceValue  = "nodeshutdown"
	taintOutOfServiceEffect = "NoExecute"
	priorOffSent            = "power_off_sent"
	priorOutOfService       = "out_of_service"
	priorOnSent             = "power_on_sent"
	powerConfirmTimeout     = 2 * time.Minute
)

func needPower(ctx context.Context, x *Exec, what string) error {
	if x.Power == nil || !x.Power.Has(ctx, x.Run.Node) {
		return Escalate("%s needs a BMC and the node has none configured", what)
	}
	return nil
}

// waitPower waits until the BMC reports want.
func waitPower(ctx context.Context, x *Exec, want string) (bool, string, error) {
	var last string
	ok, err := x.poll(ctx, x.Now().Add(powerConfirmTimeout), func() (bool, error) {
		s, err := x.Power.PowerState(ctx, x.Run.Node)
		if err != nil {
			last = "unknown (" + err.Error() + ")"
			return false, nil
		}
		last = s
		return s == want, nil
	})
	return ok, last, err
}

// PowerOffStep turns the node off through the BMC and waits until the
// BMC confirms power Off.
func PowerOffStep(ctx context.Context, x *Exec) (Outcome, string, error) {
	if err := needPower(ctx, x, "fencing"); err != nil {
		return "", "", err
	}
	if x.DryRun {
		return OutcomeDryRun, "would power the node off through the BMC and wait for Off", nil
	}
	if x.Run.Prior[priorOffSent] == "" {
		s, err := x.Power.PowerState(ctx, x.Run.Node)
		if err != nil {
			return "", "", fmt.Errorf("%w: read power state: %w", ErrUnavailable, err)
		}
		if s != StateOff {
			x.setPriorTime(priorOffSent)
			if err := x.commitDecision(ctx, priorOffSent); err != nil {
				return "", "", err
			}
			if typ, err := x.reset(ctx, PowerOff); errors.Is(err, ErrLeaseLost) {
				return "", "", err
			} else if err != nil {
				x.Log.Warn("BMC power-off request failed; checking the power state instead of resending", "err", err)
			} else {
				x.Audit(ctx, "power-off", "ResetType "+typ)
			}
		}
	}
	ok, last, err := waitPower(ctx, x, StateOff)
	if err != nil {
		return "", "", err
	}
	if !ok {
		return "", "", Escalate("the BMC did not confirm power Off within %s (last: %s); not fencing on a guess", powerConfirmTimeout, last)
	}
	return OutcomeDone, "BMC confirms power Off", nil
}

// OutOfService adds the out-of-service taint, only after re-reading from
// the BMC that the node is off.
func OutOfService(ctx context.Context, x *Exec) (Outcome, string, error) {
	if err := needPower(ctx, x, "fencing"); err != nil {
		return "", "", err
	}
	if x.Writer == nil {
		return "", "", errors.New("out-of-service: no node writer configured")
	}
	if x.DryRun {
		return OutcomeDryRun, "would taint " + TaintOutOfService + " once the BMC confirms power Off", nil
	}
	s, err := x.Power.PowerState(ctx, x.Run.Node)
	if err != nil || s != StateOff {
		return "", "", Escalate("power Off not confirmed by the BMC right before tainting (state %s); the node is not marked out-of-service", stateOr(s, err))
	}
	x.Run.SetPrior(priorOutOfService, "added")
	if err := x.Checkpoint(ctx); err != nil {
		return "", "", err
	}
	if err := x.Writer.SetTaint(ctx, x.Run.Node, TaintOutOfService, taintOutOfServiceValue, taintOutOfServiceEffect, true); err != nil {
		return "", "", err
	}
	x.Audit(ctx, "taint-out-of-service", "BMC confirmed power Off")
	_ = x.Nodes.Event(ctx, x.Run.Node, "Warning", "NodeHealerOutOfService", fmt.Sprintf("node-healer run %s: powered off (confirmed by the BMC) and tainted %s so stateful pods can move", x.Run.ID, TaintOutOfService))
	return OutcomeDone, "tainted " + TaintOutOfService + " (BMC confirmed power Off)", nil
}

// WaitEvacuated waits (evacuate_timeout) until no evictable pods remain on
// the node, then continues either way.
func WaitEvacuated(ctx context.Context, x *Exec) (Outcome, string, error) {
	if x.DryRun {
		return OutcomeDryRun, "would wait up to " + x.param("evacuate_timeout") + " for pods to leave", nil
	}
	if x.Deps.Drain == nil {
		return OutcomeSkipped, "no drainer to count pods; continuing", nil
	}
	left := -1
	ok, err := x.poll(ctx, x.Now().Add(x.duration("evacuate_timeout")), func() (bool, error) {
		rep, err := x.Deps.Drain.Drain(ctx, x.Run.Node, DrainSpec{DryRun: true, DeleteEmptyDirData: true, Force: true, Timeout: time.Minute})
		if err != nil {
			return false, nil
		}
		left = rep.Evicted
		return left == 0, nil
	})
	if err != nil {
		return "", "", err
	}
	if ok {
		return OutcomeDone, "no pods left on the node", nil
	}
	return OutcomeDone, fmt.Sprintf("%d pods still bound after %s; continuing", left, x.param("evacuate_timeout")), nil
}

// PowerOnStep powers the node back on and waits for the BMC to say On.
func PowerOnStep(ctx context.Context, x *Exec) (Outcome, string, error) {
	if err := needPower(ctx, x, "power-on"); err != nil {
		return "", "", err
	}
	if x.DryRun {
		return OutcomeDryRun, "would power the node on through the BMC", nil
	}
	s, err := x.Power.PowerState(ctx, x.Run.Node)
	if err != nil {
		return "", "", fmt.Errorf("%w: read power state: %w", ErrUnavailable, err)
	}
	if s != StateOn && x.Run.Prior[priorOnSent] == "" {
		x.setPriorTime(priorOnSent)
		x.Run.SetPrior(priorResetAt, x.Run.Prior[priorOnSent])
		if err := x.commitDecision(ctx, priorOnSent, priorResetAt); err != nil {
			return "", "", err
		}
		if typ, err := x.reset(ctx, PowerOn); errors.Is(err, ErrLeaseLost) {
			return "", "", err
		} else if err != nil {
			x.Log.Warn("BMC power-on request failed; checking the power state instead of resending", "err", err)
		} else {
			x.Audit(ctx, "power-on", "ResetType "+typ)
		}
	}
	ok, last, err := waitPower(ctx, x, StateOn)
	if err != nil {
		return "", "", err
	}
	if !ok {
		return "", "", Escalate("the BMC did not report power On within %s (last: %s)", powerConfirmTimeout, last)
	}
	return OutcomeDone, "BMC reports power On", nil
}

// RemoveOutOfService removes the taint this run added.
func RemoveOutOfService(ctx context.Context, x *Exec) (Outcome, string, error) {
	if x.Run.Prior[priorOutOfService] != "added" {
		return OutcomeSkipped, "this run did not add the taint", nil
	}
	if x.DryRun {
		return OutcomeDryRun, "would remove " + TaintOutOfService, nil
	}
	if err := x.Writer.SetTaint(ctx, x.Run.Node, TaintOutOfService, taintOutOfServiceValue, taintOutOfServiceEffect, false); err != nil {
		return "", "", err
	}
	x.Run.SetPrior(priorOutOfService, "removed")
	x.Audit(ctx, "untaint-out-of-service", "node back and healthy")
	return OutcomeDone, "removed " + TaintOutOfService, nil
}
