package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/bmcsim"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/testenv"
)

// progressRoutes: a reboot_timeout no test waits for, and a short
// reboot_progress_timeout.
func progressRoutes(progress string) string {
	return `
routes:
  - name: reboot
    matchers: ['alertname="NodeKernelDeadlock"']
    runbook: reboot
    params: {reboot_timeout: 60s, reboot_progress_timeout: ` + progress + `, ready_timeout: 60s, healthy_for: 1s, drain_timeout: 20s}
`
}

func startProgressHealer(t *testing.T, b *bmcEnv, progress string) *receiver {
	t.Helper()
	if testing.Short() {
		t.Skip("needs redis-server, kube-apiserver, kwok (integration)")
	}
	rec, _ := startReceiverWith(t, testenv.NewRedis(t), "bmc: {inventory_file: "+b.Inventory+", timeout: 3s}", progressRoutes(progress), "progress")
	return rec
}

func waitRebootEntry(t *testing.T, run *runbooks.Run) runbooks.Entry {
	t.Helper()
	for _, e := range run.Timeline {
		if e.Step == "wait-reboot" {
			return e
		}
	}
	t.Fatalf("no wait-reboot step: %s", stepsOutcomes(run))
	return runbooks.Entry{}
}

// TestProgressHungNodePowerCycledEarly: a hung OS ignores the graceful
// restart; its BMC's BootProgress stays OSRunning with an old
// LastStateTime, the node stays Ready. The power-cycle comes after
// reboot_progress_timeout (2s), not reboot_timeout (60s).
func TestProgressHungNodePowerCycledEarly(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	createNodes(t, "prog-hung")
	b := startBMC(t, bmcsim.System{ID: "prog-hung", Faults: bmcsim.Faults{IgnoreGraceful: true}})
	rec := startProgressHealer(t, b, "2s")
	_, reply := rec.post(t, amPayload("NodeKernelDeadlock", "prog-hung", "fp-prog-hung"))
	run := rec.waitRunFor(t, reply.Alerts[0].RunID, 90*time.Second)
	want := "cordon:done drain:done capture:done soft-reboot:done wait-reboot:done power-cycle:done wait-ready:done verify-health:done uncordon:done"
	if run.Status != runbooks.StatusSucceeded || stepsOutcomes(run) != want {
		t.Fatalf("run %s: %s\n%s\nwant %s", run.Status, run.Error, stepsOutcomes(run), want)
	}
	if got := b.resets("prog-hung"); fmt.Sprint(got) != "[GracefulRestart ForceRestart]" {
		t.Fatalf("BMC resets %v", got)
	}
	w := waitRebootEntry(t, run)
	t.Logf("wait-reboot after %s: %s", w.End.Sub(w.Start).Round(time.Millisecond), w.Detail)
	if d := w.End.Sub(w.Start); d < 1500*time.Millisecond || d > 20*time.Second {
		t.Fatalf("wait-reboot took %s; want about reboot_progress_timeout (2s), far less than reboot_timeout (60s)", d)
	}
	for _, s := range []string{"reboot failed", "no sign of progress within 2s", "BootProgress OSRunning since", "BMC power On", "Ready=True"} {
		if !strings.Contains(w.Detail, s) {
			t.Errorf("wait-reboot detail lacks %q: %s", s, w.Detail)
		}
	}
}

// TestProgressSlowRebootNotPowerCycled: the OS takes 2 s to shut down
// (PoweringOff; Kubernetes still sees the node Ready) and 4 s to boot.
// With reboot_progress_timeout 1s the node shows progress in time and is
// never power-cycled.
func TestProgressSlowRebootNotPowerCycled(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	createNodes(t, "prog-slow")
	b := startBMC(t, bmcsim.System{ID: "prog-slow", Faults: bmcsim.Faults{ShutdownTime: 2 * time.Second, BootTime: 4 * time.Second}})
	rec := startProgressHealer(t, b, "1s")
	_, reply := rec.post(t, amPayload("NodeKernelDeadlock", "prog-slow", "fp-prog-slow"))
	run := rec.waitRunFor(t, reply.Alerts[0].RunID, 90*time.Second)
	want := "cordon:done drain:done capture:done soft-reboot:done wait-reboot:done power-cycle:skipped wait-ready:done verify-health:done uncordon:done"
	if run.Status != runbooks.StatusSucceeded || stepsOutcomes(run) != want {
		t.Fatalf("run %s: %s\n%s\nwant %s", run.Status, run.Error, stepsOutcomes(run), want)
	}
	if got := b.resets("prog-slow"); fmt.Sprint(got) != "[GracefulRestart]" {
		t.Fatalf("BMC resets %v, want one GracefulRestart", got)
	}
	w := waitRebootEntry(t, run)
	t.Logf("wait-reboot after %s: %s", w.End.Sub(w.Start).Round(time.Millisecond), w.Detail)
	for _, s := range []string{"node went down", "BMC reports PoweringOff"} {
		if !strings.Contains(w.Detail, s) {
			t.Errorf("wait-reboot detail lacks %q: %s", s, w.Detail)
		}
	}
	if d := w.End.Sub(w.Start); d < 1500*time.Millisecond {
		t.Errorf("wait-reboot ended after %s, before the 2 s shutdown was over: %s", d, w.Detail)
	}
}
