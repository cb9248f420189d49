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
// source, and a Client per node, made on first use and replaced when the
// node's Target changes. It implements Power.
type Fleet struct {
	inv         *Inventory
	annotations AnnotationSource
	o           Options

	mu      sync.Mutex
	clients map[string]*Client
}

var _ Power = (*Fleet)(nil)

// NewFleet builds a fleet; it contacts no BMC. All clients share o (and so
// one Journal).
func NewFleet(inv *Inventory, annotations AnnotationSource, o Options) *Fleet {
	return &Fleet{inv: inv, annotations: annotations, o: o.withDefaults(), clients: map[string]*Client{}}
}

// Client returns the node's client. It fails with ErrUnknownNode when the
// node has no inventory entry and no trusted annotation, and fails closed
// when the annotations cannot be read.
func (f *Fleet) Client(ctx context.Context, node string) (*Client, error) {
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
		if reflect.DeepEqual(c.t, t) {
			return c, nil
		}
		c.Close()
		delete(f.clients, node)
	}
	c, err := New(t, f.o)
	if err != nil {
		return nil, fmt.Errorf("bmc: node %s: %w", node, err)
	}
	f.clients[node] = c
	return c, nil
}

// PowerState implements Power.
func (f *Fleet) PowerState(ctx context.Context, node string) (State, error) {
	c, err := f.Client(ctx, node)
	if err != nil {
		return StateUnknown, err
	}
	return c.PowerState(ctx)
}

// AllowedResets returns the node's allowed ResetTypes.
func (f *Fleet) AllowedResets(ctx context.Context, node string) ([]string, error) {
	c, err := f.Client(ctx, node)
	if err != nil {
		return nil, err
	}
	return c.AllowedResets(ctx)
}

// Reset implements Power (see Client.Reset).
func (f *Fleet) Reset(ctx context.Context, node string, kind Kind) (string, error) {
	c, err := f.Client(ctx, node)
	if err != nil {
		return "", err
	}
	return c.Reset(ctx, kind)
}

// ResetChecked is Client.ResetChecked for node.
func (f *Fleet) ResetChecked(ctx context.Context, node string, kind Kind, check func() error) (string, error) {
	c, err := f.Client(ctx, node)
	if err != nil {
		return "", err
	}
	return c.ResetChecked(ctx, kind, check)
}

// ResetOnce is Client.ResetOnce for node.
func (f *Fleet) ResetOnce(ctx context.Context, node string, kind Kind, decision string) (string, error) {
	c, err := f.Client(ctx, node)
	if err != nil {
		return "", err
	}
	return c.ResetOnce(ctx, kind, decision)
}

// WaitPowerState is Client.WaitPowerState for node.
func (f *Fleet) WaitPowerState(ctx context.Context, node string, want State, timeout time.Duration) (State, error) {
	c, err := f.Client(ctx, node)
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
