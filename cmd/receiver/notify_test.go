package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/testenv"
)

// TestEscalationPagesThroughAlertmanager: a run escalated by two
// replicas' node-healer (a PodDisruptionBudget blocks the drain) becomes
// one NodeHealerEscalated alert at a real Alertmanager, which its route
// delivers to the humans with the node, run and reason; removing the
// node's needs-attention label resolves it.
func TestEscalationPagesThroughAlertmanager(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	ctx := context.Background()
	paged, am := testenv.NewPagedAlertmanager(t)
	createNodes(t, "page-n1")
	must(t, cluster.EnsureNamespace(ctx, "page"))
	if _, err := cluster.CreateReplicaSetPods(ctx, "page", "db", "page-n1", 1); err != nil {
		t.Fatal(err)
	}
	blockingPDB(t, "page", "db")
	r := testenv.NewRedis(t)
	extra := fmt.Sprintf("alertmanagers: [{urls: [%q]}]\nnotify: {interval: 1s, external_url: 'http://node-healer.example:9095'}", am.URL)
	a, _ := startReceiverWith(t, r, extra, healRoutes, "page-a")
	startReceiverWith(t, r, extra, healRoutes, "page-b")

	_, reply := a.post(t, amPayload("NodeReadonlyFilesystem", "page-n1", "fp-page"))
	run := a.waitRunFor(t, reply.Alerts[0].RunID, 60*time.Second)
	if run.Status != runbooks.StatusEscalated {
		t.Fatalf("run %s: %s", run.Status, stepsOutcomes(run))
	}
	var labels map[string]string
	waitFor(t, "NodeHealerEscalated delivered to the humans", 30*time.Second, func() bool {
		labels = paged.Find("firing", "NodeHealerEscalated", "page-n1")
		return labels != nil
	})
	if labels["run"] != run.ID || labels["runbook"] != "reboot" || labels["severity"] != "critical" || labels["reason"] == "" {
		t.Errorf("escalation labels %v (run %s)", labels, run.ID)
	}
	// Other tests' nodes share this cluster (and may be escalated too):
	// count this node's alerts only.
	all, err := am.Alerts(ctx)
	var alerts []testenv.AMAlert
	for _, a := range all {
		if a.Labels["node"] == "page-n1" {
			alerts = append(alerts, a)
		}
	}
	if err != nil || len(alerts) != 1 || alerts[0].GeneratorURL != "http://node-healer.example:9095/api/v1/runs/"+run.ID {
		t.Fatalf("two replicas, one escalation: Alertmanager holds %+v (%v)", alerts, err)
	}

	// The operator handles the node and clears the mark.
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:null}}}`, runbooks.LabelNeedsAttention)
	if _, err := cluster.Client.CoreV1().Nodes().Patch(ctx, "page-n1", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the escalation resolved", 30*time.Second, func() bool {
		return paged.Find("resolved", "NodeHealerEscalated", "page-n1") != nil
	})
	if groups := paged.Groups("page-n1"); groups != 1 {
		t.Errorf("page-n1's notifications in %d groups, want one", groups)
	}
}

// TestHeldRunPages: a run held by an Alertmanager silence longer than
// notify.held_after raises NodeHealerRunHeld with the hold's kind; it
// resolves once the silence expires and the run proceeds.
func TestHeldRunPages(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	ctx := context.Background()
	paged, am := testenv.NewPagedAlertmanager(t)
	createNodes(t, "held-n1")
	// Silences the remediation alert only, not node-healer's own alerts.
	silID, err := am.AddSilence(ctx, []string{`alertname="NodeKernelDeadlock"`, `node="held-n1"`}, time.Hour, "hardware swap")
	if err != nil {
		t.Fatal(err)
	}
	extra := fmt.Sprintf("alertmanagers: [{urls: [%q]}]\nnotify: {interval: 1s, held_after: 2s}", am.URL)
	rec, _ := startReceiverWith(t, testenv.NewRedis(t), extra, defaultRoutes, "held")
	_, reply := rec.post(t, amPayload("NodeKernelDeadlock", "held-n1", "fp-held"))
	id := reply.Alerts[0].RunID
	var labels map[string]string
	waitFor(t, "NodeHealerRunHeld delivered", 30*time.Second, func() bool {
		labels = paged.Find("firing", "NodeHealerRunHeld", "held-n1")
		return labels != nil
	})
	if labels["run"] != id || labels["reason"] != "silenced" || labels["severity"] != "warning" {
		t.Errorf("held alert labels %v (run %s)", labels, id)
	}
	must(t, am.ExpireSilence(ctx, silID))
	if run := rec.waitRunFor(t, id, 60*time.Second); run.Status != runbooks.StatusSucceeded {
		t.Fatalf("run %s: %s", run.Status, stepsOutcomes(run))
	}
	waitFor(t, "NodeHealerRunHeld resolved", 30*time.Second, func() bool {
		return paged.Find("resolved", "NodeHealerRunHeld", "held-n1") != nil
	})
}
