package bmc

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"time"
)

// AnnotationSource returns a node's annotations (the Kubernetes side
// provides it); nil means annotations are not consulted.
type AnnotationSource func(ctx context.Context, node string) (map[string]string, error)

// Fleet is the BMCs of every node: an Inventory, an optional annotation
// source, and a client per node — a Redfish *Client or an *IPMIClient, as
// the node's protocol says — made on first use and replaced when the
// node's Target changes. It implements Power.
type Fleet struct {
	inv         *Inventory
	annotations AnnotationSource
	o           Options

	mu      sync.Mutex
	clients map[string]nodeClient
}

// nodeClient is what Fleet needs of a protocol's client.
type nodeClient interface {
	Target() Target
	PowerState(ctx context.Context) (State, error)
	Reset(ctx context.Context, kind Kind) (string, error)
	ResetChecked(ctx context.Context, kind Kind, check func() error) (string, error)
	ResetOnce(ctx context.Context, kind Kind, decision string) (string, error)
	WaitPowerState(ctx context.Context, want State, timeout time.Duration) (State, error)
	Close()
}

var (
	_ nodeClient = (*Client)(nil)
	_ nodeClient = (*IPMIClient)(nil)
)

var _ Power = (*Fleet)(nil)

// NewFleet builds a fleet; it contacts no BMC. All clients share o (and so
// one Journal).
func NewFleet(inv *Inventory, annotations AnnotationSource, o Options) *Fleet {
	return &Fleet{inv: inv, annotations: annotations, o: o.withDefaults(), clients: map[string]nodeClient{}}
}

// Client returns the node's Redfish client; a node whose protocol is IPMI
// is an error (see Has). It fails with ErrUnknownNode when the node has no
// inventory entry and no trusted annotation.
func (f *Fleet) Client(ctx context.Context, node string) (*Client, error) {
	c, err := f.client(ctx, node)
	if err != nil {
		return nil, err
	}
	rc, ok := c.(*Client)
	if !ok {
		return nil, fmt.Errorf("bmc: node %s: protocol %s, not redfish", node, c.Target().Protocol)
	}
	return rc, nil
}

// Has resolves the node's BMC, whatever its protocol: nil when one is
// configured (it contacts no BMC).
func (f *Fleet) Has(ctx context.Context, node string) error {
	_, err := f.client(ctx, node)
	return err
}

// Protocol returns the node's BMC protocol (ProtocolRedfish or ProtocolIPMI).
func (f *Fleet) Protocol(ctx context.Context, node string) (string, error) {
	c, err := f.client(ctx, node)
	if err != nil {
		return "", err
	}
	return c.Target().Protocol, nil
}

// client returns the node's client. It fails with ErrUnknownNode when the
// node has no inventory entry and no trusted annotation, and fails closed
// when the annotations cannot be read.
func (f *Fleet) client(ctx context.Context, node string) (nodeClient, error) {
	var ann map[string]string
	if _, inInventory := f.inv.Nodes[node]; !inInventory && f.annotations != nil {
		var err error
		if ann, err = f.annotations(ctx, node); err != nil {
			return nil, fmt.Errorf("bmc: read annotations of node %s: %w", node, err)
		}
	}
	t, err := f.inv.Lookup(node, ann)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.clients[node]; ok {
		if reflect.DeepEqual(c.Target(), t) {
			return c, nil
		}
		c.Close()
		delete(f.clients, node)
	}
	var c nodeClient
	if t.Protocol == ProtocolIPMI {
		c, err = NewIPMI(t, f.o)
	} else {
		c, err = New(t, f.o)
	}
	if err != nil {
		return nil, fmt.Errorf("bmc: node %s: %w", node, err)
	}
	f.clients[node] = c
	return c, nil
}

// PowerState implements Power.
func (f *Fleet) PowerState(ctx context.Context, node string) (State, error) {
	c, err := f.client(ctx, node)
	if err != nil {
		return StateUnknown, err
	}
	return c.PowerState(ctx)
}

// AllowedResets returns the node's allowed ResetTypes (Redfish nodes only).
func (f *Fleet) AllowedResets(ctx context.Context, node string) ([]string, error) {
	c, err := f.Client(ctx, node)
	if err != nil {
		return nil, err
	}
	return c.AllowedResets(ctx)
}

// Reset implements Power (see Client.Reset).
func (f *Fleet) Reset(ctx context.Context, node string, kind Kind) (string, error) {
	c, err := f.client(ctx, node)
	if err != nil {
		return "", err
	}
	return c.Reset(ctx, kind)
}

// ResetChecked is Client.ResetChecked for node.
func (f *Fleet) ResetChecked(ctx context.Context, node string, kind Kind, check func() error) (string, error) {
	c, err := f.client(ctx, node)
	if err != nil {
		return "", err
	}
	return c.ResetChecked(ctx, kind, check)
}

// ResetOnce is Client.ResetOnce for node.
func (f *Fleet) ResetOnce(ctx context.Context, node string, kind Kind, decision string) (string, error) {
	c, err := f.client(ctx, node)
	if err != nil {
		return "", err
	}
	return c.ResetOnce(ctx, kind, decision)
}

// WaitPowerState is Client.WaitPowerState for node.
func (f *Fleet) WaitPowerState(ctx context.Context, node string, want State, timeout time.Duration) (State, error) {
	c, err := f.client(ctx, node)
	if err != nil {
		return StateUnknown, err
	}
	return c.WaitPowerState(ctx, want, timeout)
}

// Close closes every client.
func (f *Fleet) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for n, c := range f.clients {
		c.Close()
		delete(f.clients, n)
	}
}
