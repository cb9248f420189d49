package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/node-healer/node-healer/internal/runstore"
	"github.com/node-healer/node-healer/internal/safety"
)

type statusOptions struct {
	ConfigFile string
	RedisURL   string
	Output     string
	Reason     string
}

// openGate builds the gate's Redis side for the CLI (no cluster needed).
func openGate(o statusOptions) (*safety.Gate, *runstore.Store, func(), error) {
	cfg, err := loadConfigForRedis(o.ConfigFile)
	if err != nil {
		return nil, nil, nil, err
	}
	rdb, err := newRedis(cfg, o.RedisURL)
	if err != nil {
		return nil, nil, nil, err
	}
	g, err := newGate(cfg, rdb, nil, prometheus.NewRegistry(), newLogger(logOptions{Format: "logfmt", Level: "error"}, io.Discard))
	if err != nil {
		rdb.Close()
		return nil, nil, nil, err
	}
	return g, runstore.New(rdb, cfg.Redis.KeyPrefix, time.Duration(cfg.Redis.RunTTL)), func() { rdb.Close() }, nil
}

func whoami() string {
	if u, err := user.Current(); err == nil {
		h, _ := os.Hostname()
		return u.Username + "@" + h
	}
	return "unknown"
}

func runPause(ctx context.Context, o statusOptions, pause bool, out io.Writer) error {
	g, _, done, err := openGate(o)
	if err != nil {
		return err
	}
	defer done()
	if pause {
		if strings.TrimSpace(o.Reason) == "" {
			return fmt.Errorf("say why: receiver pause --reason \"…\"")
		}
		if err := safety.Pause(ctx, g.Redis, g.Prefix, whoami(), o.Reason); err != nil {
			return fmt.Errorf("pause (redis): %w", err)
		}
		fmt.Fprintln(out, "paused: no new run starts; running ones hold before their next destructive step. `receiver resume` lifts it.")
		return nil
	}
	if err := safety.Resume(ctx, g.Redis, g.Prefix); err != nil {
		return fmt.Errorf("resume (redis): %w", err)
	}
	fmt.Fprintln(out, "resumed")
	return nil
}

func runStatus(ctx context.Context, o statusOptions, out io.Writer) error {
	g, store, done, err := openGate(o)
	if err != nil {
		return err
	}
	defer done()
	st, err := g.Status(ctx, store)
	if err != nil {
		return err
	}
	if o.Output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	printStatus(out, st)
	return nil
}

func printStatus(out io.Writer, st *safety.Status) {
	if st.Paused != nil {
		fmt.Fprintf(out, "PAUSED by %s since %s: %s\n", st.Paused.By, st.Paused.Since.Format(time.RFC3339), st.Paused.Reason)
	} else {
		fmt.Fprintln(out, "not paused")
	}
	b := st.Breaker
	state := "closed"
	if b.Open {
		state = "OPEN (no new runs start)"
	}
	fmt.Fprintf(out, "breaker: %s — %d of %d nodes unhealthy or under remediation, threshold %s (evaluated %s)\n",
		state, b.Unhealthy, b.Total, b.Threshold, b.Evaluated.Format(time.RFC3339))
	for _, g := range b.Groups {
		gs := "closed"
		if g.Open {
			gs = "OPEN (no new runs start there)"
		}
		fmt.Fprintf(out, "  %s=%q: %s — %d of %d nodes\n", b.GroupBy, g.Value, gs, g.Unhealthy, g.Total)
	}
	next := "now"
	if !st.Reboots.NextAllowed.IsZero() {
		next = st.Reboots.NextAllowed.Format(time.RFC3339)
	}
	fmt.Fprintf(out, "reboot budget: %d left (%s); next reboot allowed %s\n", st.Reboots.Remaining, st.Reboots.Limit, next)
	fmt.Fprintf(out, "limits: %d concurrent runs, %d on control-plane nodes, %s per node; silences checked: %v\n",
		st.Limits.MaxRuns, st.Limits.MaxControlPlaneRuns, st.Limits.NodeRuns, st.Limits.Silences)
	fmt.Fprintf(out, "active runs (%d): %s\n", len(st.ActiveRuns), strings.Join(st.ActiveRuns, ", "))
	for _, g := range []struct {
		name string
		runs []safety.RunSummary
	}{{"held", st.Held}, {"deferred", st.Deferred}, {"escalated", st.Escalated}} {
		fmt.Fprintf(out, "%s (%d):\n", g.name, len(g.runs))
		for _, r := range g.runs {
			reason := ""
			if r.Hold != nil {
				reason = r.Hold.Kind + ": " + r.Hold.Reason
				if !r.Hold.RetryAt.IsZero() {
					reason += " (next try " + r.Hold.RetryAt.Format(time.RFC3339) + ")"
				}
			}
			fmt.Fprintf(out, "  %s %s on %s — %s\n", r.ID, r.Runbook, r.Node, reason)
		}
	}
}
