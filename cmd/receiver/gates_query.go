package main

import (
	"fmt"
	"time"

	"github.com/node-healer/node-healer/internal/config"
	"github.com/node-healer/node-healer/internal/safety"
)

// queryChecks builds the PromQL (block_if_query) and Alertmanager
// (block_if_alerts) gates.
func (e gateEnv) queryChecks(g *config.Gates) ([]safety.Check, error) {
	var out []safety.Check
	section := e.sectionOf(g)
	for _, q := range g.BlockIfQuery {
		c, err := safety.NewQueryGate(safety.QueryGateConfig{Name: q.Name, Query: q.Query, PrometheusURL: q.PrometheusURL,
			Timeout: time.Duration(q.Timeout), Logger: e.log})
		if err != nil {
			return nil, fmt.Errorf("%s.block_if_query: %w", section, err)
		}
		out = append(out, c)
	}
	if len(g.BlockIfAlerts) == 0 {
		return out, nil
	}
	sets, err := g.AlertGateMatchers(section)
	if err != nil {
		return nil, err
	}
	if len(e.cfg.Alertmanagers) == 0 {
		return nil, fmt.Errorf("%s.block_if_alerts: needs alertmanagers (where the firing alerts are read)", section)
	}
	c, err := safety.NewAlertGate(safety.AlertGateConfig{Name: section + ".block_if_alerts", Sets: sets,
		Alertmanagers: safety.AlertmanagerSets(e.cfg.Alertmanagers), Logger: e.log})
	if err != nil {
		return nil, err
	}
	return append(out, c), nil
}

// sectionOf names g in errors and hold reasons: "gates" or
// "routes[i].gates".
func (e gateEnv) sectionOf(g *config.Gates) string {
	for i, r := range e.cfg.Routes {
		if r.Gates == g {
			return fmt.Sprintf("routes[%d].gates", i)
		}
	}
	return "gates"
}
