package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/node-healer/node-healer/internal/bmc"
	"github.com/node-healer/node-healer/internal/config"
	"github.com/node-healer/node-healer/internal/runbooks"
)

// fleetPower adapts a bmc.Fleet to runbooks.Power.
type fleetPower struct{ f *bmc.Fleet }

var _ runbooks.Power = fleetPower{}

// Has reports a BMC for the node, Redfish or IPMI.
func (p fleetPower) Has(ctx context.Context, node string) bool {
	return p.f.Has(ctx, node) == nil
}

// PowerState reads the node's power state. A BMC that refuses the
// credentials or does not answer at all escalates the run (retrying every
// claim would only lock the BMC account or wait for the network).
func (p fleetPower) PowerState(ctx context.Context, node string) (string, error) {
	s, err := p.f.PowerState(ctx, node)
	if _, permanent := bmc.Permanent(err); permanent {
		return "", runbooks.Escalate("BMC of node %s: %v", node, err)
	}
	return string(s), err
}

// BootProgress gives wait-reboot the BMC's view of the boot (Redfish
// BootProgress with the PowerState; IPMI: the power state only).
func (p fleetPower) BootProgress(ctx context.Context, node string) (string, time.Time, string, error) {
	bp, err := p.f.BootProgress(ctx, node)
	return bp.LastState, bp.LastStateTime, string(bp.PowerState), err
}

var _ runbooks.BootProgressReader = fleetPower{}

// Reset sends the reset; the runbook's last check (its lease, see
// runbooks.PreSend) runs after the system is read and right before the
// request.
//
// A BMC that refuses the credentials or cannot be reached before anything
// was sent escalates: the decision stays recorded (never resent), and a
// human fixes the inventory or the network instead of node-healer
// retrying into an account lockout.
func (p fleetPower) Reset(ctx context.Context, node, kind string) (string, error) {
	var typ string
	var err error
	if check := runbooks.PreSend(ctx); check != nil {
		typ, err = p.f.ResetChecked(ctx, node, bmc.Kind(kind), check)
	} else {
		typ, err = p.f.Reset(ctx, node, bmc.Kind(kind))
	}
	// Only a reset that never left: a failure while watching one that was
	// sent (a hung OS ignoring the soft-off) is the runbook's to judge.
	if _, permanent := bmc.Permanent(err); permanent && bmc.NotSent(err) {
		return typ, runbooks.Escalate("BMC of node %s: %v", node, err)
	}
	return typ, err
}

// newPower builds the BMC fleet from bmc.inventory_file, or nil (no BMC:
// power steps escalate) when the config names none.
func newPower(cfg *config.Config, client kubernetes.Interface, reg prometheus.Registerer, log *slog.Logger) (runbooks.Power, func(), error) {
	if cfg.BMC.InventoryFile == "" {
		return nil, func() {}, nil
	}
	inv, err := bmc.LoadInventory(cfg.BMC.InventoryFile)
	if err != nil {
		return nil, nil, fmt.Errorf("bmc.inventory_file: %w", err)
	}
	annotations := func(ctx context.Context, node string) (map[string]string, error) {
		n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return n.Annotations, nil
	}
	f := bmc.NewFleet(inv, annotations, bmc.Options{Timeout: time.Duration(cfg.BMC.Timeout), OffWait: time.Duration(cfg.BMC.OffWait), Metrics: bmc.NewMetrics(reg), Logger: log})
	return fleetPower{f}, f.Close, nil
}
