package main

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/node-healer/node-healer/internal/config"
	"github.com/node-healer/node-healer/internal/hooks"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/safety"
)

// hookChecks builds the blocking before-destructive hooks (the others are
// notified outside the gate: startHooks).
func (e gateEnv) hookChecks() ([]safety.Check, error) {
	if err := config.ValidateHookNames(e.cfg.Hooks); err != nil {
		return nil, err
	}
	all := hooks.FromConfig(e.cfg.Hooks)
	m := hooks.NewMetrics(e.reg, all)
	var out []safety.Check
	for _, h := range all {
		if h.Blocking {
			out = append(out, &hooks.Check{Hook: h, Metrics: m, Log: e.log})
		}
	}
	return out, nil
}

// startHooks sends the non-blocking hooks in the background until ctx
// ends: before-destructive (a check appended to the gate's, after the
// blocking hooks, that never holds), and run-finished and escalated
// through the returned Executor.OnFinish (nil without such hooks).
func startHooks(ctx context.Context, gate *safety.Gate, cfg *config.Config, reg prometheus.Registerer, log *slog.Logger) func(context.Context, *runbooks.Run) {
	all := hooks.FromConfig(cfg.Hooks)
	var background []*hooks.Hook
	for _, h := range all {
		if !h.Blocking {
			background = append(background, h)
		}
	}
	if len(background) == 0 {
		return nil
	}
	n := &hooks.Notifier{Hooks: background, Metrics: hooks.NewMetrics(reg, all), Log: log}
	go n.Run(ctx)
	for _, h := range background {
		if h.Wants(hooks.BeforeDestructive) {
			gate.Checks = append(gate.Checks, n.Announce())
			break
		}
	}
	return n.OnFinish
}
