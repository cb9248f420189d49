package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PowerOff makes a node look powered off: its kubelet stops (NotReady,
// Lease no longer renewed).
func (c *Cluster) PowerOff(ctx context.Context, name string) error {
	return c.SetNodeNotReady(ctx, name)
}

// PowerOn boots the node: a new boot ID (as a real kubelet reports after
// a reboot), then Ready again under kwok.
func (c *Cluster) PowerOn(ctx context.Context, name string) error {
	nodes := c.Client.CoreV1().Nodes()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	err := poll(ctx, "new boot ID on "+name, func(ctx context.Context) (string, bool, error) {
		n, err := nodes.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err.Error(), false, nil
		}
		n.Status.NodeInfo.BootID = "boot-" + hex.EncodeToString(b)
		if _, err := nodes.UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
			return err.Error(), false, nil
		}
		return "", true, nil
	})
	if err != nil {
		return err
	}
	return c.SetNodeReady(ctx, name)
}

// RebootNode simulates a reboot: off for down, then back with a new boot ID.
func (c *Cluster) RebootNode(ctx context.Context, name string, down time.Duration) error {
	if err := c.PowerOff(ctx, name); err != nil {
		return fmt.Errorf("reboot %s: %w", name, err)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(down):
	}
	return c.PowerOn(ctx, name)
}
