package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"

	"github.com/node-healer/node-healer/internal/config"
	"github.com/node-healer/node-healer/internal/kube"
	"github.com/node-healer/node-healer/internal/locks"
	"github.com/node-healer/node-healer/internal/metrics"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/safety"
)

// LabelControlPlane marks control-plane nodes.
const LabelControlPlane = "node-role.kubernetes.io/control-plane"

// cacheNodes adapts the informer cache to safety.NodeLister.
type cacheNodes struct{ c *kube.NodeCache }

func (n cacheNodes) ListNodes() ([]safety.NodeInfo, error) {
	if !n.c.Synced() {
		return nil, kube.ErrNotSynced
	}
	nodes, err := n.c.List()
	if err != nil {
		return nil, err
	}
	out := make([]safety.NodeInfo, 0, len(nodes))
	for _, nd := range nodes {
		ready := false
		for _, c := range nd.Status.Conditions {
			if c.Type == corev1.NodeReady {
				ready = c.Status == corev1.ConditionTrue
			}
		}
		_, cp := nd.Labels[LabelControlPlane]
		var taints []safety.Taint
		for _, t := range nd.Spec.Taints {
			taints = append(taints, safety.Taint{Key: t.Key, Value: t.Value, Effect: string(t.Effect)})
		}
		// Labels and Annotations are the cache's own maps: read only.
		out = append(out, safety.NodeInfo{Name: nd.Name, Ready: ready, ControlPlane: cp, Labels: nd.Labels,
			Taints: taints, Annotations: nd.Annotations, Deleting: nd.DeletionTimestamp != nil})
	}
	return out, nil
}

// newGate builds the safety gate from the config. Without a node lister
// (CLI status) the gate still reports state from Redis.
func newGate(cfg *config.Config, rdb redis.UniversalClient, nodes safety.NodeLister, reg prometheus.Registerer, log *slog.Logger) (*safety.Gate, error) {
	sf := cfg.Safety
	p := cfg.Redis.KeyPrefix
	lo := locks.Options{Registerer: reg}
	g := &safety.Gate{
		L: safety.Limits{
			MaxRuns: sf.MaxConcurrentRuns, MaxControlPlaneRuns: sf.MaxConcurrentControlPlane,
			Reboots:  locks.Limit{Rate: sf.Reboots.Count, Period: time.Duration(sf.Reboots.Period), Burst: sf.Reboots.Burst},
			NodeRuns: sf.NodeRuns.Max, NodeWindow: time.Duration(sf.NodeRuns.Window),
			BreakerPercent: sf.Breaker.MaxUnhealthyPercent, BreakerNodes: sf.Breaker.MaxUnhealthyNodes, BreakerMinNodes: sf.Breaker.MinUnhealthyNodes, BreakerHold: time.Duration(sf.Breaker.Hold), BreakerGroupBy: sf.Breaker.GroupBy,
			Settle: time.Duration(sf.Settle), SlotTTL: 3 * time.Duration(cfg.Workers.ClaimAfter), ExcludeLabel: sf.ExcludeLabel,
		},
		Redis: rdb, Prefix: p, Nodes: nodes, NodeListCache: time.Second, Log: log,
		Slots: locks.NewSlots(rdb, p, lo), Rate: locks.NewRateLimiter(rdb, p, lo), Window: locks.NewWindow(rdb, p),
		Firing: &safety.Firing{Redis: rdb, Prefix: p},
	}
	windows, err := routeWindows(cfg)
	if err != nil {
		return nil, err
	}
	g.Windows = func(route string) []safety.MaintenanceWindow { return windows[route] }
	for _, d := range cfg.Deprecations() {
		log.Warn("deprecated configuration", "migrate", d)
	}
	if len(cfg.Alertmanagers) > 0 {
		sets := safety.AlertmanagerSets(cfg.Alertmanagers)
		s, err := safety.NewSilences(safety.SilencesConfig{Alertmanagers: sets, Logger: log, Registerer: reg})
		if err != nil {
			return nil, fmt.Errorf("alertmanagers: %w", err)
		}
		g.Silences = s
		fresh, err := safety.NewSilences(safety.SilencesConfig{Alertmanagers: sets, CacheTTL: -1, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("alertmanagers: %w", err)
		}
		g.SilencesFresh = fresh
	}
	return g, nil
}

// routeWindows maps route names to their maintenance windows (decoded and
// checked by the config package).
func routeWindows(cfg *config.Config) (map[string][]safety.MaintenanceWindow, error) {
	out := map[string][]safety.MaintenanceWindow{}
	for _, r := range cfg.Routes {
		if ws := r.Windows(); len(ws) > 0 {
			out[r.Name] = ws
		}
	}
	return out, nil
}

// watchSafety evaluates the breaker every few seconds and whenever the
// webhook kicks it (an alert for a node that had none firing), publishes
// the safety gauges and says loudly when the breaker or the pause changes.
func watchSafety(ctx context.Context, g *safety.Gate, runs safety.RunLister, m *metrics.Metrics, log *slog.Logger) {
	t := time.NewTicker(3 * time.Second)
	defer t.Stop()
	wasOpen, wasPaused := false, false
	for tick := true; ; {
		if nodes, err := g.Nodes.ListNodes(); err == nil {
			if st, err := g.Breaker().Evaluate(ctx, nodes); err == nil {
				m.UnhealthyNodes.Set(float64(st.Unhealthy))
				m.BreakerOpen.Set(b2f(st.Open))
				if st.Open != wasOpen {
					if st.Open {
						log.Error("BLAST-RADIUS BREAKER OPEN: no new runs start", "unhealthy", st.Unhealthy, "total", st.Total, "threshold", st.Threshold)
					} else {
						log.Warn("blast-radius breaker closed: runs may start again", "unhealthy", st.Unhealthy, "total", st.Total)
					}
					wasOpen = st.Open
				}
			}
		}
		if !tick {
			// A kick: the breaker only (the status reads every run).
		} else if st, err := g.Status(ctx, runs); err == nil {
			m.RebootBudget.Set(float64(st.Reboots.Remaining))
			m.Paused.Set(b2f(st.Paused != nil))
			m.RunsWaiting.WithLabelValues("deferred").Set(float64(len(st.Deferred)))
			m.RunsWaiting.WithLabelValues("held").Set(float64(len(st.Held)))
			if (st.Paused != nil) != wasPaused {
				wasPaused = st.Paused != nil
				if wasPaused {
					log.Warn("node-healer PAUSED: no run starts, running ones hold before destructive steps", "by", st.Paused.By, "reason", st.Paused.Reason)
				} else {
					log.Warn("node-healer resumed")
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			tick = true
		case <-g.Breaker().Kicked():
			tick = false
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

var _ runbooks.Gate = (*safety.Gate)(nil)
