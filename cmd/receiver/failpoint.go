//go:build linux

package main

import (
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// envStopAfterStep names the test-only failpoint: a comma-separated list of
// step names after which this process freezes itself with SIGSTOP, right
// after the step's outcome is saved (a step boundary). The fault-injection
// suite (e2e, -run Fault) uses it to SIGKILL or thaw a replica at an exact
// boundary. Unset in production; setting it is logged at start.
const envStopAfterStep = "NODE_HEALER_FAILPOINT_STOP_AFTER_STEP"

// failpointAfterStep returns the executor's AfterStep hook, or nil.
func failpointAfterStep(log *slog.Logger) func(run *runbooks.Run, step string) {
	v := os.Getenv(envStopAfterStep)
	if v == "" {
		return nil
	}
	steps := strings.Split(v, ",")
	log.Warn("test failpoint armed: this replica freezes itself (SIGSTOP) after these steps", "env", envStopAfterStep, "steps", steps)
	return func(run *runbooks.Run, step string) {
		if !slices.Contains(steps, step) {
			return
		}
		log.Warn("failpoint: freezing after step", "run", run.ID, "node", run.Node, "step", step)
		// Stop from this very thread (tgkill): a process-wide SIGSTOP can
		// let this thread run one more system call (the next step's save)
		// before the stop lands.
		runtime.LockOSThread()
		_ = syscall.Tgkill(os.Getpid(), syscall.Gettid(), syscall.SIGSTOP)
		runtime.UnlockOSThread()
	}
}
