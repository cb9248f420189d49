// Package intake persists what the webhook accepts: the accepted alerts
// on the queue's stream (idempotently), the resolved ones, and the firing
// ones the blast-radius breaker counts — one Redis round trip per payload
// (one pipeline: the queue's intake script and the firing record's
// script), whatever the number of alerts in it.
//
// When a payload brings an alert for a node that had none firing, the
// breaker is kicked (evaluated now rather than at its next tick), so an
// alert storm opens it as it arrives.
package intake

import (
	"context"
	"github.com/redis/go-redis/v9"
	"time"

	"github.com/node-healer/node-healer/internal/queue"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/safety"
)

// Intake implements the webhook's Intake (internal/handlers) on the queue
// and the firing record.
type Intake struct {
	Queue  *queue.Queue
	Firing *safety.Firing // nil: firing alerts are not recorded
	// Kick, if set, is called after a payload brought the first firing
	// alert of at least one node (safety.Breaker.Kick).
	Kick func()
}

// Enqueue persists requests (manual runs).
func (i *Intake) Enqueue(ctx context.Context, reqs []runbooks.Request) ([]bool, error) {
	return i.Queue.Enqueue(ctx, reqs)
}

// Record persists one payload in one round trip.
func (i *Intake) Record(ctx context.Context, reqs []runbooks.Request, firing map[string]string, resolvedAt map[string]time.Time) ([]bool, error) {
	var extra func(redis.Pipeliner)
	var reads []func() (safety.FiringResult, error)
	if i.Firing != nil && (len(firing) > 0 || len(resolvedAt) > 0) {
		resolved := make([]string, 0, len(resolvedAt))
		for fp := range resolvedAt {
			resolved = append(resolved, fp)
		}
		// Queued on the intake pipeline; it may run twice (the queue
		// resends a payload whose script the server did not have).
		extra = func(p redis.Pipeliner) {
			reads = append(reads, i.Firing.RecordIn(ctx, p, firing, resolved))
		}
	}
	added, err := i.Queue.Intake(ctx, reqs, resolvedAt, extra)
	if err != nil {
		return nil, err
	}
	newNodes := 0
	for k, read := range reads {
		res, err := read()
		if err != nil {
			if k < len(reads)-1 {
				continue // the attempt that was sent again
			}
			return nil, err
		}
		newNodes += res.New
	}
	if newNodes > 0 && i.Kick != nil {
		i.Kick()
	}
	return added, nil
}
