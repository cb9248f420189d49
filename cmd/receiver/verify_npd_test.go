package main

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/node-healer/node-healer/internal/bmcsim"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/testenv"
)

// TestVerifyHealthWaitsForNPD: a real node-problem-detector writes its
// conditions on the node (Kubernetes exporter on). The node is rebooted
// through the BMC simulator and comes back Ready, but NPD — a DaemonSet
// pod in a real cluster — starts only a few seconds later: until then its
// KernelDeadlock=False predates the reset and proves nothing, so
// verify-health waits; once NPD reports again it passes.
func TestVerifyHealthWaitsForNPD(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	const name, npdDelay = "vh-n1", 20 * time.Second
	ctx := context.Background()
	createNodes(t, name)
	must(t, cluster.EnsureNamespace(ctx, "node-healer"))
	npd, err := testenv.NewNPD(t.TempDir(), name)
	must(t, err)
	npd.ExportTo(cluster.Host, cluster.Kubeconfig)
	must(t, npd.Start(ctx))
	t.Cleanup(npd.Stop)
	heartbeat := func() (string, time.Time) {
		for _, c := range node(t, name).Status.Conditions {
			if c.Type == "KernelDeadlock" {
				return string(c.Status), c.LastHeartbeatTime.Time
			}
		}
		return "", time.Time{}
	}
	waitFor(t, "NPD's KernelDeadlock condition on the node", 30*time.Second, func() bool {
		s, _ := heartbeat()
		return s == string(corev1.ConditionFalse)
	})

	var mu sync.Mutex
	var npdBack time.Time
	var before []corev1.NodeCondition
	power := make(chan string, 8)
	go func() {
		for state := range power {
			pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			switch state {
			case "Off":
				npd.Stop()
				before = npdConditions(t, name)
				_ = cluster.PowerOff(pctx, name)
			case "On":
				_ = cluster.PowerOn(pctx, name)
				// A reboot quicker than the node lifecycle controller's grace
				// period (40 s) leaves NPD's conditions as they were: False,
				// with a heartbeat from before the reset. (The test harness
				// marked every condition Unknown at power-off; put them back.)
				restoreConditions(t, name, before)
				time.Sleep(npdDelay) // the DaemonSet pod starts after the kubelet
				mu.Lock()
				npdBack = time.Now()
				mu.Unlock()
				_ = npd.Start(pctx)
			}
			cancel()
		}
	}()
	sim, err := bmcsim.New(bmcsim.Options{Systems: []bmcsim.System{{ID: name}}, Username: "admin", Password: "bmc-pw",
		BootTime: 300 * time.Millisecond, ShutdownTime: 100 * time.Millisecond,
		OnPower: func(_, state string) { power <- state }})
	must(t, err)
	srv, inv, err := sim.ServeTLS(t.TempDir(), []string{name})
	must(t, err)
	t.Cleanup(func() { srv.Close(); sim.Close(); close(power) })
	routes := `
routes:
  - name: reboot
    matchers: ['alertname="NodeKernelDeadlock"']
    runbook: reboot
    params: {reboot_timeout: 10s, ready_timeout: 60s, healthy_for: 1s, drain_timeout: 10s, capture: "false"}
`
	rec, _ := startReceiverWith(t, testenv.NewRedis(t), "bmc: {inventory_file: "+inv+", timeout: 3s}", routes, "verify-npd")
	_, reply := rec.post(t, amPayload("NodeKernelDeadlock", name, "fp-vh"))
	run := rec.waitRunFor(t, reply.Alerts[0].RunID, 90*time.Second)
	if run.Status != runbooks.StatusSucceeded {
		t.Fatalf("run %s: %s\n%s", run.Status, run.Error, stepsOutcomes(run))
	}
	var verify *runbooks.Entry
	for i := range run.Timeline {
		if run.Timeline[i].Step == "verify-health" {
			verify = &run.Timeline[i]
		}
	}
	mu.Lock()
	back := npdBack
	mu.Unlock()
	if verify == nil || back.IsZero() || verify.End.Before(back) {
		t.Fatalf("verify-health ended %v, NPD back at %v: it did not wait for NPD to report again\n%s", verify, back, stepsOutcomes(run))
	}
	if s, hb := heartbeat(); s != "False" || !hb.After(back.Add(-time.Second)) {
		t.Errorf("KernelDeadlock=%s heartbeat %s, NPD restarted at %s", s, hb, back)
	}
	if !strings.Contains(verify.Detail, "healthy for") {
		t.Errorf("verify-health detail %q", verify.Detail)
	}
}

// npdConditions returns the node's KernelDeadlock and ReadonlyFilesystem
// conditions.
func npdConditions(t *testing.T, name string) []corev1.NodeCondition {
	var out []corev1.NodeCondition
	for _, c := range node(t, name).Status.Conditions {
		if c.Type == "KernelDeadlock" || c.Type == "ReadonlyFilesystem" {
			out = append(out, c)
		}
	}
	return out
}

// restoreConditions writes conds back onto the node's status.
func restoreConditions(t *testing.T, name string, conds []corev1.NodeCondition) {
	ctx := context.Background()
	waitFor(t, "the conditions restored", 30*time.Second, func() bool {
		n := node(t, name)
		for _, want := range conds {
			for i := range n.Status.Conditions {
				if n.Status.Conditions[i].Type == want.Type {
					n.Status.Conditions[i] = want
				}
			}
		}
		_, err := cluster.Client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err == nil
	})
}
