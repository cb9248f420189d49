package bmc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/bougou/go-ipmi/pkg/command/chassis"
)

// IPMI chassis controls, as ipmitool names them (the `type` label of
// node_healer_bmc_resets_total{protocol="ipmi"}, and what a step's detail
// says was sent: "chassis power cycle").
const (
	ipmiSoft  = "soft"
	ipmiCycle = "cycle"
	ipmiReset = "reset"
	ipmiOff   = "off"
	ipmiOn    = "on"
)

var ipmiControl = map[string]chassis.ChassisControl{
	ipmiSoft:  chassis.ChassisControlSoftShutdown,
	ipmiCycle: chassis.ChassisControlPowerCycle,
	ipmiReset: chassis.ChassisControlHardReset,
	ipmiOff:   chassis.ChassisControlPowerDown,
	ipmiOn:    chassis.ChassisControlPowerUp,
}

// IPMICommand is how a step's detail names a control: "chassis power cycle".
func IPMICommand(control string) string { return "chassis power " + control }

// ipmiSession is one authenticated RMCP+ session with a BMC.
type ipmiSession interface {
	// PowerOn reads Get Chassis Status' "power is on" bit.
	PowerOn(ctx context.Context) (bool, error)
	// Control sends one Chassis Control request; the library does not
	// resend it (the session is opened with no retries for controls).
	Control(ctx context.Context, c chassis.ChassisControl) error
	Close(ctx context.Context)
}

// ipmiDialer opens a session; retries is how often a datagram may be
// resent after a read timeout (0 for a session that sends a control).
type ipmiDialer func(ctx context.Context, t Target, pw Secret, retries int, timeout time.Duration) (ipmiSession, error)

// IPMIClient talks IPMI v2.0 over LAN (RMCP+, lanplus) to one node's BMC.
// Each operation opens its own session and closes it, so a restarted BMC
// or an expired session never leaves a stale one behind. It is safe for
// concurrent use.
type IPMIClient struct {
	t    Target
	o    Options
	dial ipmiDialer
}

// NewIPMI builds an IPMI client; it does not contact the BMC.
func NewIPMI(t Target, o Options) (*IPMIClient, error) {
	if t.Host == "" {
		return nil, errors.New("ipmi: host is required")
	}
	if t.Port == 0 {
		t.Port = DefaultIPMIPort
	}
	return &IPMIClient{t: t, o: o.withDefaults(), dial: dialGoIPMI}, nil
}

// Target returns the client's connection settings.
func (c *IPMIClient) Target() Target { return c.t }

// Close does nothing: sessions live for one operation.
func (c *IPMIClient) Close() {}

// session opens a session under ctx.
func (c *IPMIClient) session(ctx context.Context, retries int) (ipmiSession, error) {
	pw := c.t.Password
	if pw == "" {
		var err error
		if pw, err = ReadSecret(c.t.PasswordFile); err != nil {
			return nil, err
		}
	}
	return c.dial(ctx, c.t, pw, retries, c.o.Timeout)
}

// PowerState reads the chassis power (Get Chassis Status): On or Off.
func (c *IPMIClient) PowerState(ctx context.Context) (State, error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	st, err := c.powerState(ctx)
	c.o.Metrics.requestBy(ProtocolIPMI, OpPowerState, err)
	if err != nil {
		return StateUnknown, c.wrap("chassis power status", err)
	}
	return st, nil
}

func (c *IPMIClient) powerState(ctx context.Context) (State, error) {
	s, err := c.session(ctx, 1)
	if err != nil {
		return StateUnknown, err
	}
	defer s.Close(context.WithoutCancel(ctx))
	on, err := s.PowerOn(ctx)
	if err != nil {
		return StateUnknown, err
	}
	if on {
		return StateOn, nil
	}
	return StateOff, nil
}

// ipmiPlan maps kind to chassis controls for a chassis in state. IPMI has
// no graceful restart: Soft is a soft (ACPI) shutdown and, once the
// chassis reads Off, power on.
func ipmiPlan(kind Kind, state State) ([]string, error) {
	switch kind {
	case Soft:
		if state == StateOff {
			return []string{ipmiOn}, nil
		}
		return []string{ipmiSoft, ipmiOn}, nil
	case Hard:
		return []string{ipmiCycle}, nil
	case Off:
		if state == StateOff {
			return nil, nil
		}
		return []string{ipmiOff}, nil
	case On:
		if state == StateOn {
			return nil, nil
		}
		return []string{ipmiOn}, nil
	}
	return nil, fmt.Errorf("unknown reset kind %q", kind)
}

// Reset maps kind to chassis controls and sends them, like Client.Reset:
// never resent; on a failed or unanswered control the power state is read
// again for the *ResetError. It returns the commands sent, e.g.
// "chassis power cycle", or "chassis power off+on" for the fallback.
func (c *IPMIClient) Reset(ctx context.Context, kind Kind) (string, error) {
	return c.reset(ctx, kind, nil)
}

// ResetChecked is Reset with check called right before the first control
// is sent (see Client.ResetChecked).
func (c *IPMIClient) ResetChecked(ctx context.Context, kind Kind, check func() error) (string, error) {
	return c.reset(ctx, kind, check)
}

// ResetOnce is Reset for one decision (see Client.ResetOnce).
func (c *IPMIClient) ResetOnce(ctx context.Context, kind Kind, decision string) (string, error) {
	check, err := claimOnce(ctx, c.o.Journal, c.t.Node, decision, kind)
	if err != nil {
		return "", err
	}
	return c.reset(ctx, kind, check)
}

func (c *IPMIClient) reset(ctx context.Context, kind Kind, check func() error) (string, error) {
	before, err := c.PowerState(ctx)
	if err != nil {
		c.o.Metrics.requestBy(ProtocolIPMI, OpReset, err)
		return "", fmt.Errorf("%w: read power state before reset: %w", errNotSent, err)
	}
	plan, err := ipmiPlan(kind, before)
	if err != nil {
		return "", fmt.Errorf("node %s: %w", c.t.Node, err)
	}
	log := c.o.Logger.With("node", c.t.Node, "kind", string(kind), "protocol", ProtocolIPMI)
	if len(plan) == 0 {
		log.Info("bmc reset not needed", "power_state", before)
		return "", nil
	}
	var sent []string
	for i, ctl := range plan {
		if i > 0 {
			// Soft: power on only once the OS has shut the chassis down.
			if st, err := c.WaitPowerState(ctx, StateOff, c.o.OffWait); err != nil {
				return ipmiSent(sent), fmt.Errorf("node %s: sent %s, then: %w (power state %s); power on not sent", c.t.Node, IPMICommand(sent[0]), err, st)
			}
		}
		var last func() error
		if i == 0 {
			last = check
		}
		err := c.send(ctx, ctl, last)
		var ce *checkError
		if errors.As(err, &ce) {
			return "", ce.err
		}
		sent = append(sent, ctl)
		var re *ResetError
		if ctl == ipmiCycle && errors.As(err, &re) && refusedByBMC(err) {
			// A definite refusal (IPMI: power cycle is refused while the
			// chassis is off): the cycle did nothing, so off+on is still
			// this decision's one reset.
			log.Warn("bmc refused power cycle; falling back to power off, then on", "err", err)
			return c.offOn(ctx, re, log)
		}
		if err != nil {
			log.Warn("bmc reset failed", "command", IPMICommand(ctl), "err", err)
			return ipmiSent(sent), err
		}
		log.Info("bmc reset sent", "command", IPMICommand(ctl))
	}
	return ipmiSent(sent), nil
}

// offOn is the power-cycle fallback: off unless already Off, wait for Off,
// then on. A failure of either step ends it.
func (c *IPMIClient) offOn(ctx context.Context, refused *ResetError, log interface{ Info(string, ...any) }) (string, error) {
	sent := []string{}
	if refused.After != StateOff {
		if err := c.send(ctx, ipmiOff, nil); err != nil {
			return IPMICommand(ipmiCycle) + " (refused), " + IPMICommand(ipmiOff), err
		}
		sent = append(sent, ipmiOff)
		if st, err := c.WaitPowerState(ctx, StateOff, c.o.OffWait); err != nil {
			return IPMICommand(ipmiCycle) + " (refused), " + ipmiSent(sent),
				fmt.Errorf("node %s: power cycle refused, sent power off, then: %w (power state %s); power on not sent", c.t.Node, err, st)
		}
	}
	err := c.send(ctx, ipmiOn, nil)
	sent = append(sent, ipmiOn)
	log.Info("bmc reset sent", "command", ipmiSent(sent))
	return IPMICommand(ipmiCycle) + " (refused), " + ipmiSent(sent), err
}

// ipmiSent renders the controls sent: "chassis power soft+on".
func ipmiSent(sent []string) string {
	if len(sent) == 0 {
		return ""
	}
	return IPMICommand(strings.Join(sent, "+"))
}

// checkError carries the error of the last check before sending.
type checkError struct{ err error }

func (e *checkError) Error() string { return e.err.Error() }

// send sends one control in its own session (no datagram retries) under
// its own timeout; check, if set, runs once the session is open, right
// before the control. On failure it re-reads the power state (fresh
// timeout, even if ctx is done) for the *ResetError it returns.
func (c *IPMIClient) send(ctx context.Context, ctl string, check func() error) error {
	pctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	s, err := c.session(pctx, 0)
	if err != nil {
		// No session: the control was never sent.
		c.o.Metrics.requestBy(ProtocolIPMI, OpReset, err)
		return &ResetError{Sent: IPMICommand(ctl), Maybe: false, After: c.after(ctx),
			Err: fmt.Errorf("node %s: open session: %w", c.t.Node, describeIPMI(err))}
	}
	defer s.Close(context.WithoutCancel(pctx))
	if check != nil {
		if err := check(); err != nil {
			return &checkError{err}
		}
	}
	c.o.Metrics.resetBy(ProtocolIPMI, ctl)
	err = s.Control(pctx, ipmiControl[ctl])
	c.o.Metrics.requestBy(ProtocolIPMI, OpReset, err)
	if err == nil {
		return nil
	}
	return &ResetError{Sent: IPMICommand(ctl), Maybe: ipmiMaybeApplied(err), After: c.after(ctx),
		Err: fmt.Errorf("node %s: %w", c.t.Node, describeIPMI(err))}
}

func (c *IPMIClient) after(ctx context.Context) State {
	st, err := c.PowerState(context.WithoutCancel(ctx))
	if err != nil {
		return StateUnknown
	}
	return st
}

// WaitPowerState polls the power state (see Client.WaitPowerState).
func (c *IPMIClient) WaitPowerState(ctx context.Context, want State, timeout time.Duration) (State, error) {
	return waitState(ctx, c.t.Node, want, timeout, c.o.Poll, c.PowerState)
}

// waitState polls read until it returns want, ctx ends or timeout passes.
func waitState(ctx context.Context, node string, want State, timeout, poll time.Duration, read func(context.Context) (State, error)) (State, error) {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	var last State
	var lastErr error
	for {
		st, err := read(ctx)
		if err == nil && st == want {
			return st, nil
		}
		if err == nil {
			last, lastErr = st, nil
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if err := parent.Err(); err != nil {
				return last, fmt.Errorf("wait for %s on node %s: %w", want, node, err)
			}
			if lastErr != nil {
				return last, fmt.Errorf("%w %s on node %s after %s: last read: %w", ErrTimeout, want, node, timeout, lastErr)
			}
			return last, fmt.Errorf("%w %s on node %s after %s (last %s)", ErrTimeout, want, node, timeout, last)
		case <-tick.C:
		}
	}
}

// wrap marks an IPMI error ErrBMC with the node and the command.
func (c *IPMIClient) wrap(op string, err error) error {
	return fmt.Errorf("%w: node %s: ipmi %s: %w", ErrBMC, c.t.Node, op, describeIPMI(err))
}

// isTimeout reports a network timeout (a BMC that does not answer).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
