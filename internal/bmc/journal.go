package bmc

import (
	"context"
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
