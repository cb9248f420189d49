package main

import (
	"github.com/node-healer/node-healer/internal/config"
	"github.com/node-healer/node-healer/internal/safety"
)

// nodeChecks builds the blocking_pods and hands_off gates.
func (e gateEnv) nodeChecks(g *config.Gates) ([]safety.Check, error) { return nil, nil }
