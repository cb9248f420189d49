package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/node-healer/node-healer/internal/bmcsim"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/testenv"
)

// longCommand's kwok "output" (the stage echoes the command line) is
// larger than the route's capture_max_bytes.
var longCommand = "echo " + strings.Repeat("k", 400)

var captureRoutes = `
routes:
  - name: reboot
    matchers: ['alertname="NodeKernelDeadlock"']
    runbook: reboot
    params:
      reboot_timeout: 4s
      ready_timeout: 60s
      healthy_for: 1s
      capture_max_bytes: "300"
      capture_commands: "dmesg -T | tail -n 200\n` + longCommand + `"
  - name: power-cycle
    matchers: ['alertname="NodeNotReady"']
    runbook: power-cycle
    params: {ready_timeout: 60s, healthy_for: 1s}
`

func startCaptureHealer(t *testing.T, b *bmcEnv) *receiver {
	t.Helper()
	rec, _ := startReceiverWith(t, testenv.NewRedis(t), "bmc: {inventory_file: "+b.Inventory+", timeout: 3s}", captureRoutes, "capture")
	return rec
}

// TestCaptureEvidenceThroughNodeExecPods: before the soft reboot, the
// capture commands run in node-exec pods on the kwok node; their output
// (the pods' termination messages) is kept with the run, capped, shown by
// the runs API and `runs show`; the node says why it rebooted.
func TestCaptureEvidenceThroughNodeExecPods(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	createNodes(t, "capt-n1")
	b := startBMC(t, bmcsim.System{ID: "capt-n1"})
	rec := startCaptureHealer(t, b)
	_, reply := rec.post(t, amPayload("NodeKernelDeadlock", "capt-n1", "fp-capt"))
	id := reply.Alerts[0].RunID
	run := rec.waitRunFor(t, id, 90*time.Second)
	want := "cordon:done drain:done capture:done soft-reboot:done wait-reboot:done power-cycle:skipped wait-ready:done verify-health:done uncordon:done"
	if run.Status != runbooks.StatusSucceeded || stepsOutcomes(run) != want {
		t.Fatalf("run %s: %s\n%s\nwant %s", run.Status, run.Error, stepsOutcomes(run), want)
	}
	ev := run.Evidence
	if len(ev) != 2 {
		t.Fatalf("evidence %+v", ev)
	}
	first := "kwok node-exec pod nh-capture-1-" + id + " ran: dmesg -T | tail -n 200"
	if ev[0].Command != "dmesg -T | tail -n 200" || ev[0].Output != first || ev[0].Truncated || ev[0].Error != "" {
		t.Errorf("first command's evidence %+v, want output %q", ev[0], first)
	}
	if ev[1].Command != longCommand || !ev[1].Truncated || len(ev[0].Output)+len(ev[1].Output) != 300 ||
		!strings.HasSuffix(ev[1].Output, "kkk") || strings.Contains(ev[1].Output, "ran:") {
		t.Errorf("second command's evidence: truncated %v, %d bytes %q; want the last %d bytes", ev[1].Truncated, len(ev[1].Output), ev[1].Output, 300-len(first))
	}
	// The capture pods are gone.
	pods, err := cluster.Client.CoreV1().Pods("node-healer-exec").List(context.Background(), metav1.ListOptions{LabelSelector: "node-healer.io/run=" + id})
	if err != nil || len(pods.Items) != 0 {
		t.Errorf("node-exec pods left: %d (%v)", len(pods.Items), err)
	}
	// `runs show` prints it.
	var out bytes.Buffer
	PrintRun(&out, run)
	if !strings.Contains(out.String(), "$ dmesg -T | tail -n 200") || !strings.Contains(out.String(), first) || !strings.Contains(out.String(), "truncated") {
		t.Errorf("runs show:\n%s", out.String())
	}
	// The node says why it rebooted, after the run too.
	var m runbooks.LastRemediation
	raw := node(t, "capt-n1").Annotations[runbooks.AnnotationLastRemediation]
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatalf("annotation %s %q: %v", runbooks.AnnotationLastRemediation, raw, err)
	}
	if m.Run != id || m.Runbook != "reboot" || m.Alert != "NodeKernelDeadlock" || !strings.Contains(m.Reason, "soft reboot via bmc") || m.At == "" {
		t.Errorf("last remediation %+v", m)
	}
	found := false
	for _, e := range nodeEvents(t, "capt-n1") {
		found = found || e.Reason == "NodeHealerRebooting" && e.Type == corev1.EventTypeNormal && strings.Contains(e.Message, id) && strings.Contains(e.Message, "soft reboot")
	}
	if !found {
		t.Error("no Normal Event NodeHealerRebooting with the run and reason")
	}
}

// TestCaptureUnresponsiveNodeIsPowerCycled: a node that does not answer
// gets no node-exec pod; the run records "not captured" and goes on to
// the power-cycle.
func TestCaptureUnresponsiveNodeIsPowerCycled(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	createNodes(t, "capnr-n1")
	b := startBMC(t, bmcsim.System{ID: "capnr-n1"})
	rec := startCaptureHealer(t, b)
	ctx := context.Background()
	must(t, cluster.SetNodeNotReady(ctx, "capnr-n1"))
	_, reply := rec.post(t, amPayload("NodeNotReady", "capnr-n1", "fp-capnr"))
	id := reply.Alerts[0].RunID
	run := rec.waitRunFor(t, id, 90*time.Second)
	want := "cordon:done drain:skipped capture:skipped power-cycle:done wait-ready:done verify-health:done uncordon:done"
	if run.Status != runbooks.StatusSucceeded || stepsOutcomes(run) != want {
		t.Fatalf("run %s: %s\n%s\nwant %s", run.Status, run.Error, stepsOutcomes(run), want)
	}
	if len(run.Evidence) != 1 || !strings.HasPrefix(run.Evidence[0].Error, "not captured: node not responding") {
		t.Errorf("evidence %+v", run.Evidence)
	}
	pods, err := cluster.Client.CoreV1().Pods("node-healer-exec").List(ctx, metav1.ListOptions{LabelSelector: "node-healer.io/run=" + id})
	if err != nil || len(pods.Items) != 0 {
		t.Errorf("node-exec pods for an unresponsive node: %d (%v)", len(pods.Items), err)
	}
	var m runbooks.LastRemediation
	_ = json.Unmarshal([]byte(node(t, "capnr-n1").Annotations[runbooks.AnnotationLastRemediation]), &m)
	if m.Run != id || m.Alert != "NodeNotReady" || !strings.Contains(m.Reason, "power-cycle") {
		t.Errorf("last remediation %+v", m)
	}
}
