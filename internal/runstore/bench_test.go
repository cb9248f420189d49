package runstore

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/testenv"
)

// unfencedSave is how Save wrote before fencing (one MULTI/EXEC pipeline,
// no compare): kept here only as the benchmark's baseline.
func unfencedSave(ctx context.Context, s *Store, r *runbooks.Run) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	pipe := s.rdb.TxPipeline()
	pipe.Set(ctx, s.key(r.ID), b, s.ttl)
	pipe.ZAdd(ctx, s.index(), redis.Z{Score: float64(r.Created.UnixMilli()), Member: r.ID})
	pipe.ZRemRangeByScore(ctx, s.index(), "-inf", fmt.Sprint(time.Now().Add(-s.ttl).UnixMilli()))
	_, err = pipe.Exec(ctx)
	return err
}

// BenchmarkSave compares one run-state write before (unfenced pipeline)
// and after (fenced compare-and-set script), on a run the size of a
// finished reboot (8 timeline entries), against a real redis-server.
//
//	go test -run '^$' -bench Save -benchtime 5000x ./internal/runstore/
func BenchmarkSave(b *testing.B) {
	r := testenv.NewRedis(b)
	c := r.Client(0)
	defer c.Close()
	s := New(c, "bench", time.Hour)
	ctx := context.Background()
	run := &runbooks.Run{ID: "r", Node: "node-1", Runbook: "reboot", Status: runbooks.StatusRunning, Fence: 1_700_000_000_000_000,
		Created: time.Now(), Prior: map[string]string{"unschedulable": "false", "boot_id": "5d1c7f0e-8a8e-4b0e-9f2a-1c2d3e4f5a6b"}}
	for _, step := range []string{"cordon", "drain", "soft-reboot", "wait-reboot", "power-cycle", "wait-ready", "verify-health", "uncordon"} {
		run.Timeline = append(run.Timeline, runbooks.Entry{Step: step, Start: time.Now(), End: time.Now(), Outcome: runbooks.OutcomeDone,
			Detail: "a detail line of the usual length for this step", Worker: "node-healer-0", Fence: run.Fence})
	}
	b.Run("unfenced", func(b *testing.B) {
		for b.Loop() {
			if err := unfencedSave(ctx, s, run); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fenced", func(b *testing.B) {
		for b.Loop() {
			if err := s.Save(ctx, run); err != nil {
				b.Fatal(err)
			}
		}
	})
}
