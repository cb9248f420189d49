package runbooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Prior keys the reboot steps record (persisted with the run).
const (
	priorBootID       = "boot_id"
	priorSoftSent     = "soft_reboot_sent"
	priorSoftMethod   = "soft_reboot_method"
	priorSoftResult   = "soft_reboot"
	priorCycleSent    = "power_cycle_sent"
	priorCycleType    = "power_cycle_type"
	priorResetAt      = "last_reset_at"
	softOK, softFails = "ok", "failed"
)

// SoftReboot asks the node to reboot gracefully, through the BMC
// (GracefulRestart) or a node-exec pod running `systemctl reboot`. The
// decision is saved before the request is sent, so a resumed run never
// sends a second one.
func SoftReboot(ctx context.Context, x *Exec) (Outcome, string, error) {
	if t := x.Run.Prior[priorSoftSent]; t != "" {
		return OutcomeSkipped, "soft reboot already sent at " + t + " (" + x.Run.Prior[priorSoftMethod] + "); not sent again", nil
	}
	if x.Status == nil {
		return "", "", errors.New("soft-reboot: no node status reader configured")
	}
	method := x.param("soft_reboot")
	if method == "auto" {
		method = "exec"
		if x.Power != nil && x.Power.Has(ctx, x.Run.Node) {
			method = "bmc"
		}
	}
	switch {
	case method == "bmc" && (x.Power == nil || !x.Power.Has(ctx, x.Run.Node)):
		return "", "", Escalate("soft_reboot=bmc but the node has no BMC configured")
	case method == "exec" && x.Exec == nil:
		return "", "", errors.New("soft-reboot: no node-exec runner configured")
	}
	if x.DryRun {
		return OutcomeDryRun, "would reboot gracefully via " + method, nil
	}
	st, err := x.Status.Status(ctx, x.Run.Node)
	if err != nil {
		return "", "", err
	}
	if err := markRemediation(ctx, x, "soft reboot via "+method); err != nil {
		return "", "", err
	}
	x.Run.SetPrior(priorBootID, st.BootID)
	x.Run.SetPrior(priorSoftMethod, method)
	x.setPriorTime(priorSoftSent)
	x.Run.SetPrior(priorResetAt, x.Run.Prior[priorSoftSent])
	if err := x.commitDecision(ctx, priorSoftSent, priorResetAt); err != nil {
		return "", "", fmt.Errorf("save the reboot decision before acting: %w", err)
	}
	detail := ""
	if method == "bmc" {
		typ, err := x.reset(ctx, PowerSoft)
		if errors.Is(err, ErrLeaseLost) {
			return "", "", err
		}
		if esc := (*EscalationError)(nil); errors.As(err, &esc) {
			return "", "", err // the BMC refused or cannot be reached: a human
		}
		if err != nil {
			// The request may have been applied: never resend, look instead.
			state, serr := x.Power.PowerState(ctx, x.Run.Node)
			detail = fmt.Sprintf("BMC graceful restart request failed (%v); power state now %s; not resent, watching the node", err, stateOr(state, serr))
		} else {
			detail = "graceful restart sent through the BMC (" + resetSent(typ) + ")"
		}
	} else {
		if err := x.CheckLease(); err != nil {
			return "", "", err
		}
		res, err := x.Exec.Exec(ctx, x.Run.Node, x.Run.ID, "reboot", []string{"systemctl", "reboot"}, false, x.duration("exec_timeout"))
		if err != nil {
			// The pod was not created: nothing was sent. Forget the decision.
			delete(x.Run.Prior, priorSoftSent)
			delete(x.Run.Prior, priorResetAt)
			_ = x.Checkpoint(ctx)
			return "", "", fmt.Errorf("start the reboot pod: %w", err)
		}
		detail = "systemctl reboot dispatched in node-exec pod " + res.Pod
	}
	x.Audit(ctx, "soft-reboot", detail)
	_ = x.Nodes.Event(ctx, x.Run.Node, "Normal", "NodeHealerSoftReboot", fmt.Sprintf("node-healer run %s: %s", x.Run.ID, detail))
	return OutcomeDone, detail, nil
}

// AnnotationLastRemediation is written on a node right before node-healer
// resets it (soft reboot, power-cycle, power-off), as JSON
// (LastRemediation), so `kubectl describe node` says why the node
// rebooted. It stays after the run: the node's last remediation.
const AnnotationLastRemediation = "node-healer.io/last-remediation"

// LastRemediation is the value of AnnotationLastRemediation.
type LastRemediation struct {
	Run     string `json:"run"`
	Runbook string `json:"runbook"`
	Alert   string `json:"alert"`
	Reason  string `json:"reason"`
	At      string `json:"at"` // RFC 3339
}

// markRemediation writes AnnotationLastRemediation and a Normal Event
// NodeHealerRebooting (fenced, like every node write). Only a lost lease
// or a newer fence on the node stops the step; any other failure is
// logged and the reset goes on.
func markRemediation(ctx context.Context, x *Exec, action string) error {
	reason := action
	if r := x.Run.Labels["reason"]; r != "" {
		reason += "; alert reason: " + r
	}
	alert := x.Run.Labels["alertname"]
	m := LastRemediation{Run: x.Run.ID, Runbook: x.Run.Runbook, Alert: alert, Reason: reason,
		At: x.Now().UTC().Format(time.RFC3339)}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if x.Writer != nil {
		v := string(b)
		err := x.Writer.Annotate(ctx, x.Run.Node, map[string]*string{AnnotationLastRemediation: &v}, nil)
		if errors.Is(err, ErrStaleFence) || errors.Is(err, ErrLeaseLost) {
			return err
		}
		if err != nil {
			x.Log.Warn("could not write the remediation reason on the node; resetting anyway", "err", err)
		}
	}
	msg := fmt.Sprintf("node-healer run %s (runbook %s", x.Run.ID, x.Run.Runbook)
	if alert != "" {
		msg += ", alert " + alert
	}
	msg += ") is rebooting the node: " + reason
	_ = x.Nodes.Event(ctx, x.Run.Node, "Normal", "NodeHealerRebooting", msg)
	return nil
}

// powerOffMarked is the fence runbook's power-off: the remediation reason
// goes on the node first, unless a power-off was already decided.
func powerOffMarked(ctx context.Context, x *Exec) (Outcome, string, error) {
	if !x.DryRun && x.Run.Prior[priorOffSent] == "" && x.Power != nil && x.Power.Has(ctx, x.Run.Node) {
		if err := markRemediation(ctx, x, "power-off through the BMC (fence), then power-on"); err != nil {
			return "", "", err
		}
	}
	return PowerOffStep(ctx, x)
}

func stateOr(s string, err error) string {
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return s
}

// WaitReboot watches for evidence that the soft reboot took (see
// rebootWatch): the node (boot ID, Ready, kubelet Lease) and, when the
// node has a BMC, its PowerState and BootProgress. A sign the machine
// restarted ends the wait: the soft reboot worked. No sign of progress at
// all within reboot_progress_timeout means a hung node: "reboot failed",
// and the power-cycle step takes over. A node showing progress (shutting
// down, Lease stopped) is never cut short: it gets up to reboot_timeout,
// the hard upper bound, as before. Everything seen goes in the detail.
func WaitReboot(ctx context.Context, x *Exec) (Outcome, string, error) {
	sent := x.priorTime(priorSoftSent)
	if sent.IsZero() {
		return OutcomeSkipped, "no soft reboot was sent", nil
	}
	if r := x.Run.Prior[priorSoftResult]; r != "" {
		return OutcomeSkipped, "already decided: soft reboot " + r, nil
	}
	hard, soon := x.duration("reboot_timeout"), x.duration("reboot_progress_timeout")
	soon = min(soon, hard)
	if x.DryRun {
		return OutcomeDryRun, fmt.Sprintf("would wait up to %s for the node to go down (power-cycle after %s without any sign of progress)", x.param("reboot_timeout"), soon), nil
	}
	if x.Status == nil {
		return "", "", errors.New("wait-reboot: no node status reader configured")
	}
	w := newRebootWatch(ctx, x, sent)
	stalled := false
	ok, err := x.poll(ctx, sent.Add(hard), func() (bool, error) {
		if err := w.observe(ctx, x); err != nil {
			return false, err
		}
		if w.down != "" {
			return true, nil
		}
		if w.moved == "" && !x.Now().Before(sent.Add(soon)) {
			stalled = true
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return "", "", err
	}
	if x.Run.Prior[priorSoftMethod] == "exec" && x.Exec != nil {
		_ = x.Exec.Cleanup(ctx, x.Run.Node, x.Run.ID, "reboot")
	}
	if ok && !stalled {
		x.Run.SetPrior(priorSoftResult, softOK)
		return OutcomeDone, fmt.Sprintf("node went down %s after the request: %s%s", since(x.Now(), sent), w.down, w.evidence()), nil
	}
	x.Run.SetPrior(priorSoftResult, softFails)
	if stalled {
		return OutcomeDone, fmt.Sprintf("reboot failed: no sign of progress within %s (reboot_progress_timeout; hung node): %s%s; escalating to a power-cycle",
			soon, w.still(), w.evidence()), nil
	}
	return OutcomeDone, fmt.Sprintf("reboot failed: no sign of a reboot within %s (reboot_timeout; progress seen: %s): %s%s; escalating to a power-cycle",
		x.param("reboot_timeout"), w.moved, w.still(), w.evidence()), nil
}

// PowerCycle hard-resets the node through its BMC, unless a soft reboot
// already worked. One reset per decision: the decision is saved first,
// and on a BMC error the power state is read, never a second reset sent.
func PowerCycle(ctx context.Context, x *Exec) (Outcome, string, error) {
	if x.Run.Prior[priorSoftResult] == softOK {
		return OutcomeSkipped, "soft reboot worked; no power-cycle", nil
	}
	if t := x.Run.Prior[priorCycleSent]; t != "" {
		return OutcomeSkipped, "power-cycle already sent at " + t + "; not sent again", nil
	}
	if x.Power == nil || !x.Power.Has(ctx, x.Run.Node) {
		return "", "", Escalate("the node needs a power-cycle but has no BMC configured")
	}
	if x.DryRun {
		return OutcomeDryRun, "would power-cycle through the BMC", nil
	}
	before, err := x.Power.PowerState(ctx, x.Run.Node)
	if err != nil {
		return "", "", fmt.Errorf("%w: read power state before the power-cycle: %w", ErrUnavailable, err)
	}
	why := "power-cycle through the BMC"
	if x.Run.Prior[priorSoftResult] == softFails {
		why += " (the soft reboot did not take the node down)"
	}
	if err := markRemediation(ctx, x, why); err != nil {
		return "", "", err
	}
	if x.Status != nil && x.Run.Prior[priorBootID] == "" {
		if st, err := x.Status.Status(ctx, x.Run.Node); err == nil {
			x.Run.SetPrior(priorBootID, st.BootID)
		}
	}
	x.setPriorTime(priorCycleSent)
	x.Run.SetPrior(priorResetAt, x.Run.Prior[priorCycleSent])
	if err := x.commitDecision(ctx, priorCycleSent, priorResetAt); err != nil {
		return "", "", fmt.Errorf("save the power-cycle decision before acting: %w", err)
	}
	typ, err := x.reset(ctx, PowerHard)
	if errors.Is(err, ErrLeaseLost) {
		return "", "", err
	}
	if esc := (*EscalationError)(nil); errors.As(err, &esc) {
		return "", "", err // the BMC refused or cannot be reached: a human
	}
	var detail string
	if err != nil {
		after, serr := x.Power.PowerState(ctx, x.Run.Node)
		detail = fmt.Sprintf("BMC reset request failed (%v); power state %s before, %s now; not resent (one reset per decision), watching the node", err, before, stateOr(after, serr))
	} else {
		x.Run.SetPrior(priorCycleType, typ)
		detail = "power-cycled through the BMC (" + resetSent(typ) + ", power was " + before + ")"
	}
	x.Audit(ctx, "power-cycle", detail)
	_ = x.Nodes.Event(ctx, x.Run.Node, "Warning", "NodeHealerPowerCycle", fmt.Sprintf("node-healer run %s: %s", x.Run.ID, detail))
	return OutcomeDone, detail, nil
}

// WaitReady waits (ready_timeout from the last reset) for the node to be
// back: Ready with a fresh Lease, and — after a reset — a new boot ID or
// a Ready transition after the reset.
func WaitReady(ctx context.Context, x *Exec) (Outcome, string, error) {
	if x.DryRun {
		return OutcomeDryRun, "would wait up to " + x.param("ready_timeout") + " for the node to be Ready", nil
	}
	if x.Status == nil {
		return "", "", errors.New("wait-ready: no node status reader configured")
	}
	from := x.priorTime(priorResetAt)
	reset := !from.IsZero()
	if !reset {
		from = x.Now()
	}
	bootID := x.Run.Prior[priorBootID]
	leaseAge := x.duration("lease_max_age")
	var last *NodeStatus
	ok, err := x.poll(ctx, from.Add(x.duration("ready_timeout")), func() (bool, error) {
		st, err := x.Status.Status(ctx, x.Run.Node)
		if err != nil {
			if errors.Is(err, ErrUnavailable) {
				return false, nil // the API server may be busy; keep waiting
			}
			return false, err
		}
		last = st
		if !st.Responsive(x.Now(), leaseAge) {
			return false, nil
		}
		if !reset {
			return true, nil
		}
		return (st.BootID != "" && st.BootID != bootID) || st.ReadySince.After(from), nil
	})
	if err != nil {
		return "", "", err
	}
	if !ok {
		state := "no status"
		if last != nil {
			state = fmt.Sprintf("Ready=%s, Lease renewed %s", orNone(last.Ready), age(x, last))
		}
		return "", "", Escalate("node not back within %s (%s)", x.param("ready_timeout"), state)
	}
	return OutcomeDone, fmt.Sprintf("node online: Ready with a fresh Lease %s after the %s", since(x.Now(), from), map[bool]string{true: "reset", false: "step started"}[reset]), nil
}

// VerifyHealth waits until the node has been healthy continuously for
// healthy_for: Ready, Lease fresh, every problem condition False,
// NetworkUnavailable not True and, if asked, the alert resolved. A node
// that does not get there is escalated and stays cordoned.
func VerifyHealth(ctx context.Context, x *Exec) (Outcome, string, error) {
	if x.DryRun {
		return OutcomeDryRun, "would check Ready, Lease, problem conditions and network for " + x.param("healthy_for"), nil
	}
	if x.Status == nil {
		return "", "", errors.New("verify-health: no node status reader configured")
	}
	need := x.duration("healthy_for")
	leaseAge := x.duration("lease_max_age")
	problems := strings.Split(x.param("problem_conditions"), ",")
	wantResolved := x.flag("require_alert_resolved") && x.Run.Fingerprint != ""
	var healthySince time.Time
	var reason string
	start := x.Now()
	ok, err := x.poll(ctx, start.Add(need+x.duration("ready_timeout")), func() (bool, error) {
		st, err := x.Status.Status(ctx, x.Run.Node)
		if err != nil {
			if errors.Is(err, ErrUnavailable) {
				healthySince, reason = time.Time{}, err.Error()
				return false, nil
			}
			return false, err
		}
		reason = unhealthy(x, st, problems, leaseAge)
		if reason == "" && wantResolved && x.Alerts != nil {
			if r, _, err := x.Alerts.Resolved(ctx, x.Run.Fingerprint); err != nil || !r {
				reason = "the triggering alert is still firing"
			}
		}
		if reason != "" {
			healthySince = time.Time{}
			return false, nil
		}
		if healthySince.IsZero() {
			healthySince = x.Now()
		}
		return x.Now().Sub(healthySince) >= need, nil
	})
	if err != nil {
		return "", "", err
	}
	if !ok {
		return "", "", Escalate("node not healthy for %s within %s: %s", need, since(x.Now(), start), reason)
	}
	d := fmt.Sprintf("healthy for %s: Ready, Lease fresh, no problem conditions, network available", need)
	if wantResolved {
		d += ", alert resolved"
	}
	return OutcomeDone, d, nil
}

func unhealthy(x *Exec, st *NodeStatus, problems []string, leaseAge time.Duration) string {
	if !st.Responsive(x.Now(), leaseAge) {
		return fmt.Sprintf("not responsive (Ready=%s, Lease renewed %s)", orNone(st.Ready), age(x, st))
	}
	// After a reset, a problem condition counts only once its reporter
	// evaluated it again: node-problem-detector resets its conditions to
	// False when it starts, so "False" right after boot proves nothing
	// until a heartbeat newer than the reset says it looked.
	reset := x.priorTime(priorResetAt)
	for _, p := range problems {
		p = strings.TrimSpace(p)
		v, ok := st.Conditions[p]
		if !ok {
			continue
		}
		if v != "False" {
			return "condition " + p + "=" + v
		}
		if hb := st.Heartbeats[p]; !reset.IsZero() && !hb.After(reset) {
			return fmt.Sprintf("condition %s not evaluated since the reset at %s (last heartbeat %s): waiting for its detector to report again",
				p, reset.Format(time.RFC3339), orNone(formatTime(hb)))
		}
	}
	if st.Conditions["NetworkUnavailable"] == "True" {
		return "NetworkUnavailable=True"
	}
	return ""
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339)
}

// resetSent names what went to the BMC: a Redfish ResetType ("ResetType
// ForceRestart") or the IPMI command itself ("chassis power cycle").
func resetSent(typ string) string {
	if strings.HasPrefix(typ, "chassis ") {
		return typ
	}
	return "ResetType " + typ
}
