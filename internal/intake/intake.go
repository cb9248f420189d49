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
	// Recent, if set, answers a payload this replica has just persisted,
	// sent again, after one small round trip instead of the full intake
	// (recent.go).
	Recent *Recent
}

// Enqueue persists requests (manual runs).
func (i *Intake) Enqueue(ctx context.Context, reqs []runbooks.Request) ([]bool, error) {
	return i.Queue.Enqueue(ctx, reqs)
}

// Record persists one payload in one round trip — or, for a payload
// Recent remembers persisted, checks that Redis still has it (one GET).
func (i *Intake) Record(ctx context.Context, reqs []runbooks.Request, firing map[string]string, resolvedAt map[string]time.Time) ([]bool, error) {
	var dials0 uint64
	if i.Recent != nil {
		dials0 = i.Recent.dials.Load()
		if epoch, ok := i.Recent.known(reqs, firing, resolvedAt, time.Now()); ok {
			cur, err := i.Recent.current(ctx)
			if err == nil && cur == epoch && i.Recent.dials.Load() == dials0 {
				i.Recent.hits.Add(1)
				return make([]bool, len(reqs)), nil // every run a duplicate
			}
			dials0 = i.Recent.dials.Load()
		}
	}
	var extras []func(redis.Pipeliner)
	var reads []func() (safety.FiringResult, error)
	if i.Firing != nil && (len(firing) > 0 || len(resolvedAt) > 0) {
		resolved := make([]string, 0, len(resolvedAt))
		for fp := range resolvedAt {
			resolved = append(resolved, fp)
		}
		// Queued on the intake pipeline; it may run twice (the queue
		// resends a payload whose script the server did not have).
		extras = append(extras, func(p redis.Pipeliner) {
			reads = append(reads, i.Firing.RecordIn(ctx, p, firing, resolved))
		})
	}
	var epoch *redis.StringCmd
	if i.Recent != nil {
		extras = append(extras, func(p redis.Pipeliner) { epoch = i.Recent.epochIn(ctx, p) })
	}
	var extra func(redis.Pipeliner)
	if len(extras) > 0 {
		extra = func(p redis.Pipeliner) {
			for _, f := range extras {
				f(p)
			}
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
	if i.Recent != nil && epoch != nil {
		i.Recent.confirm(reqs, resolvedAt, epoch.Val(), dials0, time.Now())
	}
	return added, nil
}
