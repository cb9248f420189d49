//go:build !linux

package main

import (
	"log/slog"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// failpointAfterStep: the test failpoint exists on Linux only.
func failpointAfterStep(*slog.Logger) func(run *runbooks.Run, step string) { return nil }
