package bmc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stmcginnis/gofish/schemas"
)

// Reset maps kind to the allowed ResetTypes (see Plan) and sends them. It
// returns what was sent ("ForceOff+On" for the two-step Hard fallback; ""
// when nothing was needed). It never retries: on a failed or timed-out
// request it re-reads PowerState and returns a *ResetError carrying it.
// Most callers want ResetOnce.
func (c *Client) Reset(ctx context.Context, kind Kind) (string, error) {
	return c.reset(ctx, kind, nil)
}

// ResetChecked is Reset with a last check: check is called after the
// ResetTypes are chosen (the system was read) and immediately before the
// first request is sent; its error is returned as is and nothing is sent.
// The runbooks pass "is my node lease still valid?" here, so the window
// between the check and the request is one local call, not a Redfish round
// trip.
func (c *Client) ResetChecked(ctx context.Context, kind Kind, check func() error) (string, error) {
	return c.reset(ctx, kind, check)
}

// ResetOnce is Reset for one decision of the caller: it records decision
// in the Journal after choosing the ResetTypes and before sending the
// first, and sends nothing (ErrAlreadySent) if the decision was recorded
// before — a reset for it may be in effect; read PowerState instead. A
// decision stays recorded even if its reset fails: a new attempt needs a
// new decision.
func (c *Client) ResetOnce(ctx context.Context, kind Kind, decision string) (string, error) {
	check, err := claimOnce(ctx, c.o.Journal, c.t.Node, decision, kind)
	if err != nil {
		return "", err
	}
	return c.reset(ctx, kind, check)
}

func (c *Client) reset(ctx context.Context, kind Kind, claim func() error) (string, error) {
	allowed, sys, err := c.allowed(ctx)
	if err != nil {
		c.o.Metrics.request(OpReset, err)
		return "", fmt.Errorf("%w: %w", errNotSent, c.wrap("read system before reset", err))
	}
	plan, err := Plan(kind, allowed, State(sys.PowerState))
	if err != nil {
		return "", fmt.Errorf("node %s: %w", c.t.Node, err)
	}
	log := c.o.Logger.With("node", c.t.Node, "kind", string(kind))
	if len(plan) == 0 {
		log.Info("bmc reset not needed", "power_state", sys.PowerState)
		return "", nil
	}
	if claim != nil {
		if err := claim(); err != nil {
			return "", err
		}
	}
	for i, t := range plan {
		if i > 0 {
			// Two-step Hard: wait for Off before powering on.
			if st, err := c.WaitPowerState(ctx, StateOff, c.o.OffWait); err != nil {
				return strings.Join(plan[:i], "+"), fmt.Errorf("node %s: hard reset: sent %s, then: %w (power state %s)", c.t.Node, plan[0], err, st)
			}
			if sys, err = c.system(ctx); err != nil {
				return strings.Join(plan[:i], "+"), c.wrap("read system before power on", err)
			}
		}
		if err := c.send(ctx, sys, t); err != nil {
			log.Warn("bmc reset failed", "reset_type", t, "err", err)
			return strings.Join(plan[:i+1], "+"), err
		}
		log.Info("bmc reset sent", "reset_type", t)
	}
	return strings.Join(plan, "+"), nil
}

// send POSTs one reset under its own timeout. On failure it re-reads
// PowerState (under a fresh timeout, even if ctx is done) for the
// *ResetError it returns.
func (c *Client) send(ctx context.Context, sys *schemas.ComputerSystem, resetType string) error {
	pctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	c.mu.Lock()
	if c.api == nil {
		c.mu.Unlock()
		return c.wrap("reset", errors.New("connection closed"))
	}
	sys.SetClient(c.api.WithContext(pctx))
	c.mu.Unlock()

	c.o.Metrics.reset(resetType)
	_, err := sys.Reset(schemas.ResetType(resetType))
	c.o.Metrics.request(OpReset, err)
	if err == nil {
		return nil
	}
	after, rerr := c.PowerState(context.WithoutCancel(ctx))
	if rerr != nil {
		after = StateUnknown
	}
	return &ResetError{Sent: resetType, Maybe: maybeApplied(err), After: after,
		Err: fmt.Errorf("node %s: %w", c.t.Node, describe(err))}
}

// WaitPowerState polls PowerState until it is want, ctx ends or timeout
// passes, and returns the last state read. Read errors are tolerated until
// then; the timeout error (matching ErrTimeout) carries the last one.
func (c *Client) WaitPowerState(ctx context.Context, want State, timeout time.Duration) (State, error) {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(c.o.Poll)
	defer tick.Stop()
	var last State
	var lastErr error
	for {
		st, err := c.PowerState(ctx)
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
				return last, fmt.Errorf("wait for %s on node %s: %w", want, c.t.Node, err)
			}
			if lastErr != nil {
				return last, fmt.Errorf("%w %s on node %s after %s: last read: %w", ErrTimeout, want, c.t.Node, timeout, lastErr)
			}
			return last, fmt.Errorf("%w %s on node %s after %s (last %s)", ErrTimeout, want, c.t.Node, timeout, last)
		case <-tick.C:
		}
	}
}
