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
	c := r.ClientFor(b, 0)
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

// BenchmarkList400: GET /api/v1/runs?limit=1000's work over 400 stored runs
// the size of a finished reboot — what a dashboard (and bench/scale, every
// second) asks of a replica.
//
//	go test -run '^$' -bench List400 ./internal/runstore/
func BenchmarkList400(b *testing.B) {
	r := testenv.NewRedis(b)
	c := r.ClientFor(b, 0)
	s := New(c, "bench", time.Hour)
	ctx := context.Background()
	for i := range 400 {
		run := &runbooks.Run{ID: fmt.Sprintf("r%03d", i), Node: fmt.Sprintf("node-%d", i), Runbook: "reboot", Status: runbooks.StatusSucceeded, Fence: 1_700_000_000_000_000,
			Labels:  map[string]string{"alertname": "NodeKernelDeadlock", "node": fmt.Sprintf("node-%d", i), "severity": "critical"},
			Created: time.Now(), Prior: map[string]string{"unschedulable": "false", "boot_id": "5d1c7f0e-8a8e-4b0e-9f2a-1c2d3e4f5a6b"}}
		for _, step := range []string{"cordon", "drain", "soft-reboot", "wait-reboot", "power-cycle", "wait-ready", "verify-health", "uncordon"} {
			run.Timeline = append(run.Timeline, runbooks.Entry{Step: step, Start: time.Now(), End: time.Now(), Outcome: runbooks.OutcomeDone,
				Detail: "a detail line of the usual length for this step", Worker: "node-healer-0", Fence: run.Fence})
		}
		if err := s.Save(ctx, run); err != nil {
			b.Fatal(err)
		}
	}
	// "decoded": how GET /api/v1/runs answered before (List, then the
	// whole list encoded); "stored": ListJSON, the stored objects joined
	// as the handler now does.
	b.Run("decoded", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			runs, err := s.List(ctx, 1000)
			if err != nil || len(runs) != 400 {
				b.Fatal(len(runs), err)
			}
			out, err := json.Marshal(map[string]any{"runs": runs})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(out)))
		}
	})
	b.Run("stored", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			raws, err := s.ListJSON(ctx, 1000)
			if err != nil || len(raws) != 400 {
				b.Fatal(len(raws), err)
			}
			n := 16
			for _, r := range raws {
				n += len(r) + 1
			}
			out := append(make([]byte, 0, n), `{"runs":[`...)
			for i, r := range raws {
				if i > 0 {
					out = append(out, ',')
				}
				out = append(out, r...)
			}
			out = append(out, "]}"...)
			b.SetBytes(int64(len(out)))
		}
	})
}
