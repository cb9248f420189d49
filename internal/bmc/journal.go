package bmc

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Journal records, before a reset is sent, that it is about to be sent for
// a decision. Claim must be durable and atomic (e.g. Redis SET NX, or the
// run's own saved state) for the "never two resets for one decision"
// guarantee to survive a crash.
type Journal interface {
	// Claim records (node, decision). It returns false, and records
	// nothing, when the pair was claimed before: a reset for that decision
	// may already have been sent.
	Claim(ctx context.Context, node, decision string, kind Kind) (bool, error)
}

// MemJournal is a process-local Journal: enough for tests and a single
// replica's retries, not for a crash. Its zero value is ready to use.
type MemJournal struct {
	mu sync.Mutex
	m  map[[2]string]Kind
}

// Claim implements Journal.
func (j *MemJournal) Claim(_ context.Context, node, decision string, kind Kind) (bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	k := [2]string{node, decision}
	if _, ok := j.m[k]; ok {
		return false, nil
	}
	if j.m == nil {
		j.m = map[[2]string]Kind{}
	}
	j.m[k] = kind
	return true, nil
}

// claimOnce is ResetOnce's last check for one decision: it records the
// decision in j, or refuses (ErrAlreadySent) when it was recorded before.
func claimOnce(ctx context.Context, j Journal, node, decision string, kind Kind) (func() error, error) {
	if decision == "" {
		return nil, errors.New("reset once: empty decision ID")
	}
	return func() error {
		ok, err := j.Claim(ctx, node, decision, kind)
		if err != nil {
			return fmt.Errorf("record reset decision %s: %w", decision, err)
		}
		if !ok {
			return fmt.Errorf("%w: node %s decision %s", ErrAlreadySent, node, decision)
		}
		return nil
	}, nil
}
