package bmc_test

import (
	"context"
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/bmc"
	"github.com/node-healer/node-healer/internal/bmcsim"
)

// BootProgress read through gofish from the simulator: OSRunning with the
// simulator's start time before; a graceful restart walks the boot
// (PoweringOff, Off, PoweringOn with the firmware and OS states, each
// LastStateTime newer than the request) back to OSRunning; a hung OS
// stays OSRunning with its old LastStateTime; firmware without
// BootProgress reads as "".
func TestBootProgressThroughGofish(t *testing.T) {
	e := start(t, bmcsim.Options{BootTime: 400 * time.Millisecond, ShutdownTime: 60 * time.Millisecond, PoweringOn: true,
		Systems: []bmcsim.System{{ID: "n1"}, {ID: "hung", Faults: bmcsim.Faults{IgnoreGraceful: true}}, {ID: "old", Faults: bmcsim.Faults{NoBootProgress: true}}}})
	ctx := context.Background()
	c := e.client(t, "n1", "n1", e.options())
	bp, err := c.BootProgress(ctx)
	simState, simAt := e.sim.BootProgress("n1")
	if err != nil || bp.LastState != "OSRunning" || bp.PowerState != bmc.StateOn || !bp.LastStateTime.Equal(simAt.Truncate(time.Millisecond)) || simState != "OSRunning" {
		t.Fatalf("before: %+v, %v (simulator: %s %v)", bp, err, simState, simAt)
	}
	sent := time.Now().Truncate(time.Millisecond)
	if _, err := c.Reset(ctx, bmc.Soft); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	powers := map[bmc.State]bool{}
	deadline := time.Now().Add(5 * time.Second)
	for {
		bp, err := c.BootProgress(ctx)
		if err != nil {
			t.Fatal(err)
		}
		powers[bp.PowerState] = true
		if bp.LastState != "OSRunning" {
			seen[bp.LastState] = true
			if bp.LastStateTime.Before(sent) {
				t.Fatalf("%s with LastStateTime %v, before the request at %v", bp.LastState, bp.LastStateTime, sent)
			}
		} else if bp.LastStateTime.After(sent) && bp.PowerState == bmc.StateOn {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not back to OSRunning: %+v; seen %v", bp, seen)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !seen["OSBootStarted"] || !powers[bmc.StatePoweringOff] || !powers[bmc.StatePoweringOn] {
		t.Fatalf("boot states seen %v, power states %v", seen, powers)
	}

	h := e.client(t, "hung", "hung", e.options())
	before, err := h.BootProgress(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Reset(ctx, bmc.Soft); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if after, err := h.BootProgress(ctx); err != nil || after != before || !after.LastStateTime.Before(sent) {
		t.Fatalf("hung OS: %+v, %v; before the request %+v", after, err, before)
	}

	o := e.client(t, "old", "old", e.options())
	if bp, err := o.BootProgress(ctx); err != nil || bp.LastState != "" || !bp.LastStateTime.IsZero() || bp.PowerState != bmc.StateOn {
		t.Fatalf("no BootProgress: %+v, %v", bp, err)
	}
}
