package main

import (
	"github.com/node-healer/node-healer/internal/safety"
)

// hookChecks builds the blocking before-destructive hooks (the others are
// notified outside the gate).
func (e gateEnv) hookChecks() ([]safety.Check, error) { return nil, nil }
