package runbooks

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// BootProgressReader is what a Power may also offer: the BMC's view of the
// boot (Redfish ComputerSystem BootProgress.LastState and LastStateTime)
// with the PowerState read in the same request. state is "" and at zero
// when the BMC reports no BootProgress. wait-reboot uses it when the
// node's Power has it (`if r, ok := x.Power.(BootProgressReader)`).
type BootProgressReader interface {
	BootProgress(ctx context.Context, node string) (state string, at time.Time, power string, err error)
}

// BMC power states beyond StateOn and StateOff that a reboot passes
// through.
const (
	StatePoweringOff = "PoweringOff"
	StatePoweringOn  = "PoweringOn"
)

// rebootWatch gathers what wait-reboot sees after a soft reboot request.
// Two kinds of evidence:
//
//   - down: the machine did restart — a new boot ID, Ready not True (or a
//     Ready transition after the request), the BMC reporting power Off or
//     PoweringOn, BootProgress.LastState changed or its LastStateTime after
//     the request. The soft reboot worked.
//   - progress: the OS is on its way down but has not got there — the BMC
//     reporting PoweringOff, the kubelet Lease no longer renewed (or renewed
//     again after a stop). The node is not power-cycled for a missed
//     reboot_progress_timeout; the wait goes on up to reboot_timeout.
//
// Every source is optional: no BMC, a BMC without BootProgress, no Lease
// all leave the others to decide. LastStateTime comes from the BMC's clock;
// one far ahead of node-healer's could make an old boot look new, which
// leads to an escalation from wait-ready, never to a power-cycle.
type rebootWatch struct {
	sent       time.Time
	bootID     string
	leaseStale time.Duration // a Lease not renewed this long has stopped

	power    Power // nil: no BMC
	progress BootProgressReader

	// What was seen, in order, with the time since the request.
	notes []string
	down  string // first sign the machine restarted
	moved string // first sign of progress short of that

	first         bool
	bootState     string // BootProgress.LastState at the first read
	bootAt        time.Time
	noBoot        bool // the BMC reports no BootProgress
	leaseIgnored  bool // the Lease was already stale at the request, or absent
	leaseStopped  bool
	lastPower     string
	lastBMCErr    string
	lastNodeState string // for the failure detail
}

func newRebootWatch(ctx context.Context, x *Exec, sent time.Time) *rebootWatch {
	w := &rebootWatch{sent: sent, bootID: x.Run.Prior[priorBootID], leaseStale: x.duration("lease_max_age") / 2, first: true}
	if x.Power != nil && x.Power.Has(ctx, x.Run.Node) {
		w.power = x.Power
		w.progress, _ = x.Power.(BootProgressReader)
	}
	return w
}

func (w *rebootWatch) note(now time.Time, format string, args ...any) {
	w.notes = append(w.notes, fmt.Sprintf("+%s ", since(now, w.sent))+fmt.Sprintf(format, args...))
}

func (w *rebootWatch) sawDown(now time.Time, why string) {
	if w.down == "" {
		w.down = why
		w.note(now, "%s", why)
	}
}

func (w *rebootWatch) sawProgress(now time.Time, why string) {
	if w.moved == "" {
		w.moved = why
	}
	w.note(now, "%s", why)
}

// observe reads the node and its BMC once and records what changed.
func (w *rebootWatch) observe(ctx context.Context, x *Exec) error {
	now := x.Now()
	st, err := x.Status.Status(ctx, x.Run.Node)
	if err != nil {
		return err
	}
	w.node(now, st)
	if w.power != nil {
		w.bmc(ctx, x, now)
	}
	w.first = false
	return nil
}

func (w *rebootWatch) node(now time.Time, st *NodeStatus) {
	lease := "no Lease"
	if !st.LeaseRenewed.IsZero() {
		lease = "Lease renewed " + since(now, st.LeaseRenewed).String() + " ago"
	}
	w.lastNodeState = fmt.Sprintf("Ready=%s, %s, boot ID %s", orNone(st.Ready), lease, map[bool]string{true: "unchanged", false: "changed"}[st.BootID == w.bootID || st.BootID == ""])
	switch {
	case st.BootID != "" && st.BootID != w.bootID:
		w.sawDown(now, "boot ID changed")
	case st.Ready != "True":
		w.sawDown(now, "node went NotReady (Ready="+orNone(st.Ready)+")")
	case st.ReadySince.After(w.sent):
		w.sawDown(now, "Ready flipped after the request (last transition "+st.ReadySince.UTC().Format(time.RFC3339)+")")
	}
	// The Lease: only a Lease that was being renewed when the request was
	// sent says anything by stopping.
	if w.first && (st.LeaseRenewed.IsZero() || w.sent.Sub(st.LeaseRenewed) > w.leaseStale) {
		w.leaseIgnored = true
		if !st.LeaseRenewed.IsZero() {
			w.note(now, "Lease already not renewed for %s at the request; not used", since(w.sent, st.LeaseRenewed))
		}
	}
	if w.leaseIgnored || st.LeaseRenewed.IsZero() {
		return
	}
	stale := now.Sub(st.LeaseRenewed) > w.leaseStale
	switch {
	case stale && !w.leaseStopped:
		w.leaseStopped = true
		w.sawProgress(now, "kubelet Lease stopped (last renewed "+since(now, st.LeaseRenewed).String()+" ago)")
	case !stale && w.leaseStopped:
		w.leaseStopped = false
		w.sawProgress(now, "kubelet Lease renewed again")
	}
}

func (w *rebootWatch) bmc(ctx context.Context, x *Exec, now time.Time) {
	var state, power string
	var at time.Time
	var err error
	if w.progress != nil {
		state, at, power, err = w.progress.BootProgress(ctx, x.Run.Node)
	} else {
		power, err = w.power.PowerState(ctx, x.Run.Node)
	}
	if err != nil {
		if msg := err.Error(); msg != w.lastBMCErr {
			w.lastBMCErr = msg
			w.note(now, "BMC read failed: %s", msg)
		}
		return
	}
	w.lastBMCErr = ""
	if power != w.lastPower {
		w.lastPower = power
		switch power {
		case StateOff, StatePoweringOn:
			w.sawDown(now, "BMC reports power "+power)
		case StatePoweringOff:
			w.sawProgress(now, "BMC reports PoweringOff")
		default:
			if !w.first {
				w.note(now, "BMC reports power %s", orNone(power))
			}
		}
	}
	if w.progress == nil {
		return
	}
	if state == "" {
		if !w.noBoot {
			w.noBoot = true
			w.note(now, "BMC reports no BootProgress")
		}
		return
	}
	switch {
	case w.bootState == "" || w.noBoot:
		w.noBoot = false
		w.bootState, w.bootAt = state, at
		if at.After(w.sent) {
			w.sawDown(now, "BootProgress "+state+" at "+stamp(at)+", after the request")
		}
	case state != w.bootState || at.After(w.bootAt) && at.After(w.sent):
		w.sawDown(now, "BootProgress "+w.bootState+" → "+state+" at "+stamp(at))
		w.bootState, w.bootAt = state, at
	}
}

// evidence is what was seen, for the step detail.
func (w *rebootWatch) evidence() string {
	if len(w.notes) == 0 {
		return ""
	}
	return "; seen: " + strings.Join(w.notes, ", ")
}

// still describes the last state read, for a failure detail.
func (w *rebootWatch) still() string {
	parts := []string{w.lastNodeState}
	if w.power != nil {
		b := "BMC power " + orNone(w.lastPower)
		switch {
		case w.progress == nil:
		case w.noBoot:
			b += ", no BootProgress"
		case w.bootState != "":
			b += ", BootProgress " + w.bootState + " since " + stamp(w.bootAt)
		}
		if w.lastBMCErr != "" {
			b += " (last read failed: " + w.lastBMCErr + ")"
		}
		parts = append(parts, b)
	} else {
		parts = append(parts, "no BMC")
	}
	return strings.Join(parts, "; ")
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}
