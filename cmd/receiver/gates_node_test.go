package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/testenv"
)

const drainRoute = `
routes:
  - name: drain
    matchers: ['alertname="NodeDiskPressure"']
    runbook: drain
    params: {drain_timeout: 60s}
`

// waitHold waits until the run is held before step with kind, and returns it.
func (r *receiver) waitHold(t *testing.T, id, step, kind string) *runbooks.Run {
	t.Helper()
	var run *runbooks.Run
	waitFor(t, "run "+id+" held before "+step+" ("+kind+")", 30*time.Second, func() bool {
		run = r.run(t, id)
		return run != nil && run.Status == runbooks.StatusHeld && run.Hold != nil && run.Hold.Kind == kind && run.Hold.Step == step
	})
	return run
}

// TestGateNodeBlockingPod: a pod matching blocking_pods on the node holds
// the run before drain; one matching elsewhere, or finished, does not;
// deleting it lets the run go on.
func TestGateNodeBlockingPod(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	createNodes(t, "bp-n1", "bp-n2")
	ctx := context.Background()
	must(t, cluster.EnsureNamespace(ctx, "node-healer"))
	must(t, cluster.EnsureNamespace(ctx, "bp"))
	must(t, cluster.EnsureNamespace(ctx, "bp-other"))
	// On another node, finished on this node, and in a namespace not
	// listed: none of these blocks.
	_, err := cluster.CreatePod(ctx, "bp", "rebuild-elsewhere", "bp-n2", func(p *corev1.Pod) { p.Labels["app"] = "rebuild" })
	must(t, err)
	_, err = cluster.CreatePod(ctx, "bp", "rebuild-done", "bp-n1", func(p *corev1.Pod) { p.Labels["app"] = "rebuild" })
	must(t, err)
	must(t, cluster.WaitPodRunning(ctx, "bp", "rebuild-done"))
	done, err := cluster.Client.CoreV1().Pods("bp").Get(ctx, "rebuild-done", metav1.GetOptions{})
	must(t, err)
	done.Status.Phase = corev1.PodSucceeded
	_, err = cluster.Client.CoreV1().Pods("bp").UpdateStatus(ctx, done, metav1.UpdateOptions{})
	must(t, err)
	other, err := cluster.CreateReplicaSetPods(ctx, "bp-other", "rebuild", "bp-n1", 1) // app=rebuild too
	must(t, err)
	// The one that blocks.
	_, err = cluster.CreatePod(ctx, "bp", "rebuild", "bp-n1")
	must(t, err)

	extra := `gates: {blocking_pods: {label_selector: "app=rebuild", namespaces: [bp]}}
safety: {settle: 10ms, breaker: {max_unhealthy_percent: 100}}`
	rec, _ := startReceiverWith(t, testenv.NewRedis(t), extra, drainRoute, "blocking-pods")
	_, reply := rec.post(t, amPayload("NodeDiskPressure", "bp-n1", "fp-bp"))
	id := reply.Alerts[0].RunID
	run := rec.waitHold(t, id, "drain", "blocking_pod")
	if !strings.Contains(run.Hold.Reason, "pod bp/rebuild matching") || strings.Contains(run.Hold.Reason, "more") {
		t.Fatalf("hold reason %q: want the one blocking pod named", run.Hold.Reason)
	}
	time.Sleep(2 * time.Second)
	if run := rec.run(t, id); run.Status != runbooks.StatusHeld {
		t.Fatalf("run %s while the blocking pod is there", run.Status)
	}
	if _, err := cluster.Client.CoreV1().Pods("bp-other").Get(ctx, other[0].Name, metav1.GetOptions{}); err != nil {
		t.Fatalf("drained while held: %v", err)
	}
	must(t, cluster.Client.CoreV1().Pods("bp").Delete(ctx, "rebuild", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}))
	run = rec.waitRunFor(t, id, 60*time.Second)
	if run.Status != runbooks.StatusSucceeded {
		t.Fatalf("run %s: %s\n%s", run.Status, run.Error, stepsOutcomes(run))
	}
	if _, err := cluster.Client.CoreV1().Pods("bp-other").Get(ctx, other[0].Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("pod %s not drained after the hold: %v", other[0].Name, err)
	}
}

// TestGateNodeHandsOff: cluster-autoscaler's deletion taint (a default
// mark) and a configured annotation defer the run before drain, with a
// retry time; once both are gone the run proceeds.
func TestGateNodeHandsOff(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	createNodes(t, "ho-n1")
	ctx := context.Background()
	must(t, cluster.EnsureNamespace(ctx, "node-healer"))
	taint := corev1.Taint{Key: "ToBeDeletedByClusterAutoscaler", Value: "1764151200", Effect: corev1.TaintEffectNoSchedule}
	n := node(t, "ho-n1")
	n.Spec.Taints = append(n.Spec.Taints, taint)
	n.Annotations["example.com/upgrading"] = "yes"
	_, err := cluster.Client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
	must(t, err)

	extra := `gates: {hands_off: {annotations: ["example.com/upgrading=yes"]}}
safety: {settle: 10ms, breaker: {max_unhealthy_percent: 100}}`
	rec, _ := startReceiverWith(t, testenv.NewRedis(t), extra, drainRoute, "hands-off")
	_, reply := rec.post(t, amPayload("NodeDiskPressure", "ho-n1", "fp-ho"))
	id := reply.Alerts[0].RunID
	// Deferred when the run is admitted: not even cordoned.
	var run *runbooks.Run
	waitFor(t, "the run deferred (hands_off)", 30*time.Second, func() bool {
		run = rec.run(t, id)
		return run != nil && run.Status == runbooks.StatusDeferred && run.Hold != nil && run.Hold.Kind == "hands_off"
	})
	if !strings.Contains(run.Hold.Reason, "taint ToBeDeletedByClusterAutoscaler (cluster-autoscaler") || run.Hold.RetryAt.IsZero() {
		t.Fatalf("hold %+v: want the cluster-autoscaler taint named and a retry time", run.Hold)
	}
	if node(t, "ho-n1").Spec.Unschedulable || len(run.Timeline) != 0 {
		t.Fatalf("a node another actor is working on was touched: %s", stepsOutcomes(run))
	}
	patchNode(t, "ho-n1", `{"spec":{"taints":null}}`)
	waitFor(t, "the deferral to name the annotation", 60*time.Second, func() bool {
		run = rec.run(t, id)
		return run.Status == runbooks.StatusDeferred && run.Hold != nil && strings.Contains(run.Hold.Reason, "annotation example.com/upgrading=yes")
	})
	patchNode(t, "ho-n1", `{"metadata":{"annotations":{"example.com/upgrading":"done"}}}`)
	run = rec.waitRunFor(t, id, 60*time.Second)
	if run.Status != runbooks.StatusSucceeded {
		t.Fatalf("run %s: %s\n%s", run.Status, run.Error, stepsOutcomes(run))
	}
}

// TestGateNodeDeletingCancels: a node being deleted (deletionTimestamp
// set, a finalizer keeps it) cancels the run before it starts, even
// without a hands_off section.
func TestGateNodeDeletingCancels(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	createNodes(t, "del-n1")
	ctx := context.Background()
	must(t, cluster.EnsureNamespace(ctx, "node-healer"))
	const finalizer = "node-healer.io/test-keep"
	patchNode(t, "del-n1", `{"metadata":{"finalizers":["`+finalizer+`"]}}`)
	t.Cleanup(func() {
		patchNode(t, "del-n1", `{"metadata":{"finalizers":null}}`)
	})
	must(t, cluster.Client.CoreV1().Nodes().Delete(ctx, "del-n1", metav1.DeleteOptions{}))
	if node(t, "del-n1").DeletionTimestamp == nil {
		t.Fatal("no deletionTimestamp")
	}

	extra := `gates: {blocking_pods: {label_selector: "app=nothing-has-this"}}
safety: {settle: 10ms, breaker: {max_unhealthy_percent: 100}}`
	rec, _ := startReceiverWith(t, testenv.NewRedis(t), extra, drainRoute, "deleting")
	_, reply := rec.post(t, amPayload("NodeDiskPressure", "del-n1", "fp-del"))
	id := reply.Alerts[0].RunID
	run := rec.waitRunFor(t, id, 60*time.Second)
	if run.Status != runbooks.StatusCancelled || !strings.Contains(run.Error, "del-n1 is being deleted") {
		t.Fatalf("run %s (%q), want cancelled because the node is being deleted\n%s", run.Status, run.Error, stepsOutcomes(run))
	}
	for _, s := range run.Timeline {
		if s.Step == "drain" {
			t.Fatalf("drain ran on a node being deleted: %+v", s)
		}
	}
}

func patchNode(t *testing.T, name, patch string) {
	t.Helper()
	if !json.Valid([]byte(patch)) {
		t.Fatalf("bad patch %s", patch)
	}
	_, err := cluster.Client.CoreV1().Nodes().Patch(context.Background(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
}
