package safety

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/node-healer/node-healer/internal/locks"
	"github.com/node-healer/node-healer/internal/runbooks"
)

// RunLoader reads one run (the run store).
type RunLoader interface {
	Load(ctx context.Context, id string) (*runbooks.Run, error)
}

// KeepSlots renews the slot of every admitted run whose record is not
// final yet, and frees the slot of a run that is final. A slot is held from
// admission until the run is final — through a lost lease, a replica's
// crash or a rollout, while the run waits in the stream to be resumed — so
// max_concurrent_runs and the control-plane cap hold throughout. It
// expires (SlotTTL) only when no replica renews it: every replica gone, or
// the run record gone with Redis' data. Every replica calls it every
// SlotTTL/3 (refreshes are idempotent).
func (g *Gate) KeepSlots(ctx context.Context, runs RunLoader) (renewed, freed int, err error) {
	for _, pool := range []string{poolRuns, poolControlPlane} {
		hs, err := g.Slots.Holders(ctx, pool)
		if err != nil {
			return renewed, freed, err
		}
		for _, h := range hs {
			id, _, _ := strings.Cut(h, "/")
			r, err := runs.Load(ctx, id)
			switch {
			case errors.Is(err, runbooks.ErrRunNotFound):
				// No record: nothing to keep it for; it expires by itself.
			case err != nil:
				return renewed, freed, fmt.Errorf("load run %s: %w", id, err)
			case r.Status.Final():
				if err := g.Slots.Release(ctx, pool, h); err == nil {
					freed++
				}
			default:
				if err := g.Slots.Refresh(ctx, pool, h, g.L.SlotTTL); err == nil {
					renewed++
				} else if !errors.Is(err, locks.ErrSlotLost) {
					return renewed, freed, err
				}
			}
		}
	}
	return renewed, freed, nil
}

// KeepSlotsLoop calls KeepSlots every SlotTTL/3 until ctx ends.
func (g *Gate) KeepSlotsLoop(ctx context.Context, runs RunLoader) {
	t := time.NewTicker(max(g.L.SlotTTL/3, 100*time.Millisecond))
	defer t.Stop()
	for {
		if _, freed, err := g.KeepSlots(ctx, runs); err != nil && ctx.Err() == nil {
			g.Log.Warn("could not renew the slots of unfinished runs; they expire after slot TTL unless renewed", "err", err, "ttl", g.L.SlotTTL)
		} else if freed > 0 {
			g.Log.Info("freed slots of finished runs", "count", freed)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
