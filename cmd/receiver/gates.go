package main

import (
	"cmp"
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"

	"github.com/node-healer/node-healer/internal/config"
	"github.com/node-healer/node-healer/internal/kube"
	"github.com/node-healer/node-healer/internal/safety"
)

// gateEnv is what the gate checks are built from.
type gateEnv struct {
	// ctx bounds the informers the gates start (the receiver's lifetime).
	ctx    context.Context
	cfg    *config.Config
	client kubernetes.Interface
	nodes  *kube.NodeCache
	reg    prometheus.Registerer
	log    *slog.Logger
}

// checksOf builds the checks of one gates section (global or a route's).
func (e gateEnv) checksOf(g *config.Gates) ([]safety.Check, error) {
	if g == nil {
		return nil, nil
	}
	var out []safety.Check
	for _, build := range []func(*config.Gates) ([]safety.Check, error){e.queryChecks, e.nodeChecks} {
		cs, err := build(g)
		if err != nil {
			return nil, err
		}
		out = append(out, cs...)
	}
	return out, nil
}

// installChecks sets the gate's global and per-route checks and the
// before-destructive hooks.
func installChecks(gate *safety.Gate, e gateEnv) error {
	// Without a gates section the built-in checks (other actors' marks,
	// a node being deleted) still apply.
	global, err := e.checksOf(cmp.Or(e.cfg.Gates, &config.Gates{}))
	if err != nil {
		return err
	}
	hooks, err := e.hookChecks()
	if err != nil {
		return err
	}
	gate.Checks = append(global, hooks...)
	perRoute := map[string][]safety.Check{}
	for _, r := range e.cfg.Routes {
		cs, err := e.checksOf(r.Gates)
		if err != nil {
			return err
		}
		if len(cs) > 0 {
			perRoute[r.Name] = cs
		}
	}
	if len(perRoute) > 0 {
		gate.RouteChecks = func(route string) []safety.Check { return perRoute[route] }
	}
	return nil
}
