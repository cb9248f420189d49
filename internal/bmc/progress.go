package bmc

import (
	"context"
	"time"
)

// BootProgress is what a BMC says about the system's boot: Redfish
// ComputerSystem BootProgress.LastState and LastStateTime, and the
// PowerState read with them.
type BootProgress struct {
	// LastState is a Redfish BootProgressTypes value (OSBootStarted,
	// OSRunning, None…); "" when the BMC reports no BootProgress (older
	// firmware, IPMI).
	LastState string
	// LastStateTime is when LastState was last updated, by the BMC's clock;
	// zero when absent or not a Redfish DateTime.
	LastStateTime time.Time
	PowerState    State
}

// BootProgress reads the system once (counted as a power_state request).
func (c *Client) BootProgress(ctx context.Context) (BootProgress, error) {
	sys, err := c.system(ctx)
	c.o.Metrics.request(OpPowerState, err)
	if err != nil {
		return BootProgress{}, c.wrap("read boot progress", err)
	}
	return bootProgressOf(string(sys.BootProgress.LastState), sys.BootProgress.LastStateTime, State(sys.PowerState)), nil
}

func bootProgressOf(state, at string, power State) BootProgress {
	bp := BootProgress{LastState: state, PowerState: power}
	if t, err := time.Parse(time.RFC3339Nano, at); err == nil {
		bp.LastStateTime = t
	}
	return bp
}

// BootProgress is Client.BootProgress for the node. An IPMI node has no
// BootProgress: its power state only.
func (f *Fleet) BootProgress(ctx context.Context, node string) (BootProgress, error) {
	p, err := f.Protocol(ctx, node)
	if err != nil {
		return BootProgress{}, err
	}
	if p == ProtocolIPMI {
		s, err := f.PowerState(ctx, node)
		return BootProgress{PowerState: s}, err
	}
	c, err := f.Client(ctx, node)
	if err != nil {
		return BootProgress{}, err
	}
	return c.BootProgress(ctx)
}
