package main

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/config"
	"github.com/node-healer/node-healer/internal/kube"
	"github.com/node-healer/node-healer/internal/notify"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/safety"
)

// newNotifier builds the sender of node-healer's own alerts, or nil when
// no Alertmanager is configured or notify.disabled is set.
func newNotifier(cfg *config.Config, rdb redis.UniversalClient, runs notify.RunLister, nodes *kube.NodeCache,
	reg *runbooks.Registry, replica string, promReg prometheus.Registerer, log *slog.Logger) (*notify.Notifier, error) {
	if len(cfg.Alertmanagers) == 0 || cfg.Notify.Disabled {
		return nil, nil
	}
	var targets []notify.Target
	for _, s := range safety.AlertmanagerSets(cfg.Alertmanagers) {
		targets = append(targets, notify.Target{URLs: s.URLs, HTTPConfig: s.HTTPConfig, Timeout: s.Timeout})
	}
	n := cfg.Notify
	return notify.New(notify.Options{
		Targets: targets, Redis: rdb, Prefix: cfg.Redis.KeyPrefix, Replica: replica, Runs: runs, Nodes: nodes.List,
		ExternalURL: n.ExternalURL, RunbookURL: n.RunbookURL,
		HeldAfter: time.Duration(n.HeldAfter), FailedFor: time.Duration(n.FailedFor), Interval: time.Duration(n.Interval),
		Remediating: n.Remediating, Destructive: func(name string) bool {
			rb, ok := reg.Get(name)
			if !ok {
				return false
			}
			for _, s := range rb.Steps {
				if s.Destructive {
					return true
				}
			}
			return false
		},
		Registerer: promReg, Log: log.With("component", "notify"),
	})
}
