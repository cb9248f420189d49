package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/node-healer/node-healer/internal/bmcsim"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/safety"
	"github.com/node-healer/node-healer/internal/testenv"
)

func (r *receiver) status(t *testing.T) *safety.Status {
	t.Helper()
	resp, err := http.Get(r.URL + "/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	st := &safety.Status{}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(st); err != nil {
		t.Fatal(err)
	}
	return st
}

func (r *receiver) metric(t *testing.T, line string) bool {
	t.Helper()
	return strings.Contains(r.metricsText(t), line)
}

// metricsText is the receiver's /metrics page.
func (r *receiver) metricsText(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(r.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// manyAlerts is one Alertmanager notification with one alert per node.
func manyAlerts(alertname, status string, nodes []string, fpPrefix string) string {
	var as []string
	for _, n := range nodes {
		as = append(as, fmt.Sprintf(`{"status":%q,"labels":{"alertname":%q,"node":%q},"annotations":{},"startsAt":"2026-11-26T10:00:00Z","endsAt":"2026-11-26T11:00:00Z","fingerprint":"%s-%s"}`,
			status, alertname, n, fpPrefix, n))
	}
	return `{"version":"4","groupKey":"{}:{}","status":"firing","receiver":"node-healer","alerts":[` + strings.Join(as, ",") + `]}`
}

func nodeNames(prefix string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s-%03d", prefix, i))
	}
	return out
}

// TestStormRespectsConcurrencyCap: 100 nodes alert at once with a cap of
// 2 concurrent runs: never more than 2 at once (checked continuously),
// every run completes, the rest deferred meanwhile.
func TestStormRespectsConcurrencyCap(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	nodes := nodeNames("storm", 100)
	createNodes(t, nodes...)
	ctx := context.Background()
	must(t, cluster.EnsureNamespace(ctx, "node-healer"))
	routes := `
routes:
  - name: kubelet
    matchers: ['alertname="NodeFrequentKubeletRestart"']
    runbook: restart-kubelet
    params: {healthy_for: 100ms, exec_timeout: 30s}
`
	extra := "safety: {max_concurrent_runs: 2, settle: 10ms, breaker: {max_unhealthy_percent: 100}}"
	rec, _ := startReceiverWith(t, testenv.NewRedis(t), extra+"\nworkers: {count: 4, claim_after: 2s}", routes, "storm")
	_ = rec
	var mu sync.Mutex
	maxActive, maxPods := 0, 0
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			case <-time.After(15 * time.Millisecond):
			}
			st := rec.status(t)
			pods, err := cluster.Client.CoreV1().Pods("node-healer").List(ctx, metav1.ListOptions{LabelSelector: "node-healer.io/action=restart-kubelet"})
			mu.Lock()
			maxActive = max(maxActive, len(st.ActiveRuns))
			if err == nil {
				running := 0
				for _, p := range pods.Items {
					if p.DeletionTimestamp == nil {
						running++
					}
				}
				maxPods = max(maxPods, running)
			}
			mu.Unlock()
		}
	}()
	code, reply := rec.post(t, manyAlerts("NodeFrequentKubeletRestart", "firing", nodes, "storm"))
	if code != 200 || reply.Accepted != 100 {
		t.Fatalf("%d accepted %d", code, reply.Accepted)
	}
	deferredSeen := false
	for _, a := range reply.Alerts {
		run := rec.waitRunFor(t, a.RunID, 4*time.Minute)
		if run.Status != runbooks.StatusSucceeded {
			t.Fatalf("run on %s: %s %s", run.Node, run.Status, run.Error)
		}
	}
	close(stop)
	<-watched
	if rec.metric(t, `node_healer_deferrals_total{reason="concurrency"} 0`) {
		t.Error("no run was deferred for concurrency")
	} else {
		deferredSeen = true
	}
	mu.Lock()
	defer mu.Unlock()
	if maxActive > 2 || maxPods > 2 {
		t.Fatalf("observed %d active runs and %d node-exec pods at once; cap is 2", maxActive, maxPods)
	}
	if maxActive < 2 {
		t.Errorf("never saw 2 runs at once (max %d): the test did not exercise the cap", maxActive)
	}
	t.Logf("100 runs done; max concurrent runs %d, node-exec pods %d, deferrals seen %v", maxActive, maxPods, deferredSeen)
}

// TestRebootRateLimit: reboots across nodes are never faster than the
// cluster-wide rate; the runs wait (held) and all complete.
func TestRebootRateLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	nodes := nodeNames("rate", 4)
	createNodes(t, nodes...)
	var systems []bmcsim.System
	for _, n := range nodes {
		systems = append(systems, bmcsim.System{ID: n})
	}
	b := startBMC(t, systems...)
	ctx := context.Background()
	must(t, cluster.EnsureNamespace(ctx, "node-healer"))
	routes := `
routes:
  - name: cycle
    matchers: ['alertname="NodeNotReady"']
    runbook: power-cycle
    params: {ready_timeout: 60s, healthy_for: 200ms}
`
	extra := "bmc: {inventory_file: " + b.Inventory + "}\nsafety: {max_concurrent_runs: 4, settle: 10ms, reboots: {count: 1, period: 3s, burst: 1}, breaker: {max_unhealthy_percent: 100}}\nworkers: {count: 4, claim_after: 2s}"
	rec, _ := startReceiverWith(t, testenv.NewRedis(t), extra, routes, "rate")
	_, reply := rec.post(t, manyAlerts("NodeNotReady", "firing", nodes, "rate"))
	for _, a := range reply.Alerts {
		run := rec.waitRunFor(t, a.RunID, 3*time.Minute)
		if run.Status != runbooks.StatusSucceeded {
			t.Fatalf("run on %s: %s %s\n%s", run.Node, run.Status, run.Error, stepsOutcomes(run))
		}
	}
	var at []time.Time
	for _, n := range nodes {
		for _, r := range b.Sim.Resets(n) {
			if r.Applied {
				at = append(at, r.At)
			}
		}
	}
	if len(at) != len(nodes) {
		t.Fatalf("%d resets for %d nodes", len(at), len(nodes))
	}
	slicesSortTimes(at)
	for i := 1; i < len(at); i++ {
		// GCRA on Redis time: 3 s apart; allow scheduling slack below.
		if gap := at[i].Sub(at[i-1]); gap < 2900*time.Millisecond {
			t.Fatalf("resets %d and %d only %s apart; the rate is 1 per 3s", i-1, i, gap)
		}
	}
	if rec.metric(t, `node_healer_holds_total{reason="rate"} 0`) {
		t.Error("no run was held by the rate limit")
	}
}

func slicesSortTimes(ts []time.Time) {
	for i := 1; i < len(ts); i++ {
		for j := i; j > 0 && ts[j].Before(ts[j-1]); j-- {
			ts[j], ts[j-1] = ts[j-1], ts[j]
		}
	}
}

// TestBreakerStopsStorm: 30 % of nodes alert with a 20 % breaker:
// nothing starts, the breaker is visible; after the alerts resolve and
// the hold passes, it closes.
func TestBreakerStopsStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	all := nodeNames("brk", 10)
	createNodes(t, all...)
	routes := `
routes:
  - name: cordon
    matchers: ['alertname="NodeKernelDeadlock"']
    runbook: cordon
`
	// The breaker counts nodes of the whole (shared) test cluster; use a
	// node count threshold so other tests' nodes don't dilute it.
	extra := "safety: {settle: 500ms, breaker: {max_unhealthy_nodes: 2, min_unhealthy_nodes: 2, hold: 2s}}"
	rec, _ := startReceiverWith(t, testenv.NewRedis(t), extra, routes, "breaker")
	start := time.Now()
	_, reply := rec.post(t, manyAlerts("NodeKernelDeadlock", "firing", all[:3], "brk"))
	if reply.Accepted != 3 {
		t.Fatalf("accepted %d", reply.Accepted)
	}
	waitFor(t, "the breaker to open", 20*time.Second, func() bool { return rec.status(t).Breaker.Open })
	t.Logf("breaker open %s after the alerts", time.Since(start).Round(time.Millisecond))
	waitFor(t, "node_healer_breaker_open 1", 20*time.Second, func() bool { return rec.metric(t, "node_healer_breaker_open 1") })
	time.Sleep(3 * time.Second)
	for _, n := range all[:3] {
		if node(t, n).Spec.Unschedulable {
			t.Fatalf("%s was cordoned while the breaker was open", n)
		}
	}
	st := rec.status(t)
	if len(st.Deferred) != 3 || st.Deferred[0].Hold == nil || st.Deferred[0].Hold.Kind != "breaker" {
		t.Fatalf("deferred runs %+v", st.Deferred)
	}
	// The alerts resolve: after the hold the breaker closes and the
	// deferred runs are cancelled, not started.
	rec.post(t, manyAlerts("NodeKernelDeadlock", "resolved", all[:3], "brk"))
	waitFor(t, "the breaker to close", 30*time.Second, func() bool { return !rec.status(t).Breaker.Open })
	for _, a := range reply.Alerts {
		run := rec.waitRunFor(t, a.RunID, 30*time.Second)
		if run.Status != runbooks.StatusCancelled {
			t.Errorf("run %s: %s, want cancelled", run.Node, run.Status)
		}
	}
	for _, n := range all[:3] {
		if node(t, n).Spec.Unschedulable {
			t.Fatalf("%s cordoned after its alert resolved", n)
		}
	}
}

// TestTwoReplicasOneRunPerNode: two replicas on one Redis, both receiving
// every notification (an HA Alertmanager pair): each node gets one run.
func TestTwoReplicasOneRunPerNode(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	nodes := nodeNames("ha", 6)
	createNodes(t, nodes...)
	r := testenv.NewRedis(t)
	routes := "\nroutes:\n  - name: cordon\n    matchers: ['alertname=\"NodeKernelDeadlock\"']\n    runbook: cordon\n"
	extra := "safety: {max_concurrent_runs: 3, settle: 10ms, breaker: {max_unhealthy_percent: 100}}"
	a, _ := startReceiverWith(t, r, extra, routes, "ha-a")
	b, _ := startReceiverWith(t, r, extra, routes, "ha-b")
	body := manyAlerts("NodeKernelDeadlock", "firing", nodes, "ha")
	var wg sync.WaitGroup
	var replies [2]int
	for i, rec := range []*receiver{a, b} {
		wg.Go(func() { _, rep := rec.post(t, body); replies[i] = rep.Accepted })
	}
	wg.Wait()
	if replies[0]+replies[1] != len(nodes) {
		t.Fatalf("accepted %v, want %d in total", replies, len(nodes))
	}
	for _, n := range nodes {
		id := runbooks.RunID("ha-"+n, time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
		run := a.waitRunFor(t, id, 60*time.Second)
		if run.Status != runbooks.StatusSucceeded || run.Attempts != 1 {
			t.Fatalf("%s: %s attempts %d", n, run.Status, run.Attempts)
		}
		cordons := 0
		for _, e := range nodeEvents(t, n) {
			if e.Reason == "NodeHealerCordon" {
				cordons++
			}
		}
		if cordons != 1 {
			t.Fatalf("%s: %d cordon events, want 1", n, cordons)
		}
	}
}

// TestSilenceHoldsBeforeReboot: a silence added while the run drains holds
// it before the reboot; when the silence expires the run goes on. With
// Alertmanager stopped, runs hold (fail closed): none fails or proceeds.
func TestSilenceHoldsBeforeReboot(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	createNodes(t, "sil-n1")
	b := startBMC(t, bmcsim.System{ID: "sil-n1"})
	am := testenv.NewAlertmanager(t, "")
	ctx := context.Background()
	must(t, cluster.EnsureNamespace(ctx, "node-healer"))
	must(t, cluster.EnsureNamespace(ctx, "sil"))
	if _, err := cluster.CreateReplicaSetPods(ctx, "sil", "db", "sil-n1", 1); err != nil {
		t.Fatal(err)
	}
	pdb := blockingPDB(t, "sil", "db")
	routes := `
routes:
  - name: reboot
    matchers: ['alertname="NodeKernelDeadlock"']
    runbook: reboot
    params: {reboot_timeout: 4s, ready_timeout: 60s, healthy_for: 500ms, drain_timeout: 60s}
`
	extra := "bmc: {inventory_file: " + b.Inventory + "}\nalertmanager: {urls: [" + am.URL + "]}\nsafety: {settle: 10ms, breaker: {max_unhealthy_percent: 100}}"
	rec, _ := startReceiverWith(t, testenv.NewRedis(t), extra, routes, "silence")
	_, reply := rec.post(t, amPayload("NodeKernelDeadlock", "sil-n1", "fp-sil"))
	id := reply.Alerts[0].RunID
	waitFor(t, "the run to be draining", 30*time.Second, func() bool {
		run := rec.run(t, id)
		return run != nil && len(run.Timeline) >= 2 && run.Timeline[1].Step == "drain"
	})
	silID, err := am.AddSilence(ctx, []string{`node="sil-n1"`}, time.Hour, "hardware swap")
	if err != nil {
		t.Fatal(err)
	}
	allowPDB(t, pdb) // the drain can finish now
	waitFor(t, "the run to hold before the reboot", 30*time.Second, func() bool {
		run := rec.run(t, id)
		return run.Status == runbooks.StatusHeld && run.Hold != nil && run.Hold.Step == "soft-reboot"
	})
	run := rec.run(t, id)
	if run.Hold.Kind != "silenced" || !strings.Contains(run.Hold.Reason, "hardware swap") {
		t.Fatalf("hold %+v", run.Hold)
	}
	time.Sleep(2 * time.Second)
	if len(b.Sim.Resets("sil-n1")) != 0 {
		t.Fatal("a silenced node was rebooted")
	}
	// Alertmanager goes away: still held (fail closed), not failed.
	am.Stop()
	waitFor(t, "hold reason: alertmanager unreachable", 30*time.Second, func() bool {
		run := rec.run(t, id)
		return run.Status == runbooks.StatusHeld && run.Hold.Kind == "alertmanager_unreachable"
	})
	if len(b.Sim.Resets("sil-n1")) != 0 {
		t.Fatal("rebooted while Alertmanager was unreachable")
	}
	must(t, am.Restart())
	must(t, am.ExpireSilence(ctx, silID))
	run = rec.waitRunFor(t, id, 90*time.Second)
	if run.Status != runbooks.StatusSucceeded {
		t.Fatalf("run %s: %s\n%s", run.Status, run.Error, stepsOutcomes(run))
	}
	if len(b.Sim.Resets("sil-n1")) != 1 {
		t.Fatalf("resets %v", b.Sim.Resets("sil-n1"))
	}
}

func blockingPDB(t *testing.T, ns, app string) *policyv1.PodDisruptionBudget {
	t.Helper()
	ctx := context.Background()
	one := intstr.FromInt32(1)
	pdb, err := cluster.Client.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: app},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pdb.Status = policyv1.PodDisruptionBudgetStatus{ObservedGeneration: pdb.Generation, DisruptionsAllowed: 0, CurrentHealthy: 1, DesiredHealthy: 1, ExpectedPods: 1}
	pdb, err = cluster.Client.PolicyV1().PodDisruptionBudgets(ns).UpdateStatus(ctx, pdb, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pdb
}

func allowPDB(t *testing.T, pdb *policyv1.PodDisruptionBudget) {
	t.Helper()
	ctx := context.Background()
	cur, err := cluster.Client.PolicyV1().PodDisruptionBudgets(pdb.Namespace).Get(ctx, pdb.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Status.DisruptionsAllowed, cur.Status.CurrentHealthy, cur.Status.DesiredHealthy = 1, 2, 1
	if _, err := cluster.Client.PolicyV1().PodDisruptionBudgets(pdb.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestNodeCapEscalates: past the per-node run cap, the next alert
// escalates to a human instead of running again.
func TestNodeCapEscalates(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	createNodes(t, "cap-n1")
	routes := "\nroutes:\n  - name: cordon\n    matchers: ['alertname=\"NodeKernelDeadlock\"']\n    runbook: cordon\n"
	rec, _ := startReceiverWith(t, testenv.NewRedis(t), "safety: {settle: 10ms, node_runs: {max: 2, window: 1h}}", routes, "cap")
	var runs []*runbooks.Run
	for i := range 3 {
		_, reply := rec.post(t, amPayload("NodeKernelDeadlock", "cap-n1", fmt.Sprintf("fp-cap-%d", i)))
		runs = append(runs, rec.waitRunFor(t, reply.Alerts[0].RunID, 30*time.Second))
	}
	if runs[0].Status != runbooks.StatusSucceeded || runs[1].Status != runbooks.StatusSucceeded {
		t.Fatalf("first runs: %s %s", runs[0].Status, runs[1].Status)
	}
	if runs[2].Status != runbooks.StatusEscalated || !strings.Contains(runs[2].Error, "2 runs on this node") || len(runs[2].Timeline) != 0 {
		t.Fatalf("third run: %s %q timeline %d", runs[2].Status, runs[2].Error, len(runs[2].Timeline))
	}
	if n := node(t, "cap-n1"); n.Labels[runbooks.LabelNeedsAttention] != "true" {
		t.Fatalf("node labels %v", n.Labels)
	}
}

// TestControlPlaneQuorum: with one of three control-plane nodes down, no
// other control-plane node is taken (etcd would lose quorum).
func TestControlPlaneQuorum(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	cps := nodeNames("cp", 3)
	createNodes(t, cps...)
	ctx := context.Background()
	for _, n := range cps {
		nd := node(t, n)
		nd.Labels[LabelControlPlane] = ""
		if _, err := cluster.Client.CoreV1().Nodes().Update(ctx, nd, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	must(t, cluster.SetNodeNotReady(ctx, cps[0]))
	routes := "\nroutes:\n  - name: cordon\n    matchers: ['alertname=\"NodeKernelDeadlock\"']\n    runbook: cordon\n"
	rec, _ := startReceiverWith(t, testenv.NewRedis(t), "safety: {settle: 10ms, max_concurrent_runs: 5, breaker: {max_unhealthy_percent: 100}}", routes, "cp")
	_, reply := rec.post(t, amPayload("NodeKernelDeadlock", cps[1], "fp-cp-1"))
	id := reply.Alerts[0].RunID
	waitFor(t, "the run to be deferred for quorum", 30*time.Second, func() bool {
		run := rec.run(t, id)
		return run != nil && run.Status == runbooks.StatusDeferred && run.Hold != nil && run.Hold.Kind == "quorum"
	})
	if node(t, cps[1]).Spec.Unschedulable {
		t.Fatal("a control-plane node was taken although etcd would lose quorum")
	}
	// The first control-plane node comes back: now the run may go.
	must(t, cluster.SetNodeReady(ctx, cps[0]))
	run := rec.waitRunFor(t, id, 60*time.Second)
	if run.Status != runbooks.StatusSucceeded {
		t.Fatalf("%s %s", run.Status, run.Error)
	}
}

// TestPauseResume: receiver pause defers new runs everywhere; resume lets
// them start.
func TestPauseResume(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	createNodes(t, "pause-n1")
	r := testenv.NewRedis(t)
	routes := "\nroutes:\n  - name: cordon\n    matchers: ['alertname=\"NodeKernelDeadlock\"']\n    runbook: cordon\n"
	rec, _ := startReceiverWith(t, r, "safety: {settle: 10ms}", routes, "pause")
	ctx := context.Background()
	rdb := r.Client(0)
	defer rdb.Close()
	must(t, safety.Pause(ctx, rdb, "node-healer", "test", "change freeze"))
	_, reply := rec.post(t, amPayload("NodeKernelDeadlock", "pause-n1", "fp-pause"))
	id := reply.Alerts[0].RunID
	waitFor(t, "the run to be deferred (paused)", 30*time.Second, func() bool {
		run := rec.run(t, id)
		return run != nil && run.Status == runbooks.StatusDeferred && run.Hold.Kind == "paused" && strings.Contains(run.Hold.Reason, "change freeze")
	})
	if st := rec.status(t); st.Paused == nil || st.Paused.Reason != "change freeze" {
		t.Fatalf("status paused %+v", st.Paused)
	}
	must(t, safety.Resume(ctx, rdb, "node-healer"))
	if run := rec.waitRunFor(t, id, 30*time.Second); run.Status != runbooks.StatusSucceeded {
		t.Fatalf("%s %s", run.Status, run.Error)
	}
	_ = corev1.NodeReady
}

// TestResolvedBeforeRebootCancels: the alert resolves while the run
// drains; before the reboot the run stops, undoes its cordon, and the
// BMC is never touched.
func TestResolvedBeforeRebootCancels(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	createNodes(t, "res-n1")
	b := startBMC(t, bmcsim.System{ID: "res-n1"})
	ctx := context.Background()
	must(t, cluster.EnsureNamespace(ctx, "res"))
	if _, err := cluster.CreateReplicaSetPods(ctx, "res", "db", "res-n1", 1); err != nil {
		t.Fatal(err)
	}
	pdb := blockingPDB(t, "res", "db")
	routes := `
routes:
  - name: reboot
    matchers: ['alertname="NodeKernelDeadlock"']
    runbook: reboot
    params: {drain_timeout: 60s}
`
	rec, _ := startReceiverWith(t, testenv.NewRedis(t), "bmc: {inventory_file: "+b.Inventory+"}", routes, "resolve")
	firing := manyAlerts("NodeKernelDeadlock", "firing", []string{"res-n1"}, "res")
	_, reply := rec.post(t, firing)
	id := reply.Alerts[0].RunID
	waitFor(t, "the run to be draining", 30*time.Second, func() bool {
		run := rec.run(t, id)
		return run != nil && len(run.Timeline) >= 2 && run.Timeline[1].Step == "drain"
	})
	rec.post(t, manyAlerts("NodeKernelDeadlock", "resolved", []string{"res-n1"}, "res"))
	allowPDB(t, pdb)
	run := rec.waitRunFor(t, id, 60*time.Second)
	if run.Status != runbooks.StatusCancelled || !strings.Contains(run.Error, "stopped before soft-reboot") {
		t.Fatalf("run %s %q\n%s", run.Status, run.Error, stepsOutcomes(run))
	}
	if last := run.Timeline[len(run.Timeline)-1]; last.Step != "uncordon" || last.Outcome != runbooks.OutcomeDone {
		t.Fatalf("timeline %s", stepsOutcomes(run))
	}
	if len(b.Sim.Resets("res-n1")) != 0 {
		t.Fatal("the BMC was touched after the alert resolved")
	}
	if node(t, "res-n1").Spec.Unschedulable {
		t.Fatal("the run's cordon was left behind")
	}
}

// TestOptOutAndMaintenanceWindow: a node labelled node-healer.io/exclude
// is never touched; a route whose maintenance window is closed holds the
// run before its first destructive step.
func TestOptOutAndMaintenanceWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	createNodes(t, "opt-n1", "win-n1")
	ctx := context.Background()
	n := node(t, "opt-n1")
	n.Labels["node-healer.io/exclude"] = "true"
	if _, err := cluster.Client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A window that is closed now: one minute, about twelve hours away.
	closed := time.Now().UTC().Add(12 * time.Hour).Hour()
	routes := fmt.Sprintf(`
routes:
  - name: cordon
    matchers: ['alertname="NodeKernelDeadlock"']
    runbook: cordon
  - name: drain-in-window
    matchers: ['alertname="NodeDiskPressure"']
    runbook: drain
    maintenance_windows: [{times: [{start_time: "%02d:00", end_time: "%02d:01"}]}]
`, closed, closed)
	rec, _ := startReceiverWith(t, testenv.NewRedis(t), "safety: {settle: 10ms, max_concurrent_runs: 3, breaker: {max_unhealthy_percent: 100}}", routes, "optout")
	_, reply := rec.post(t, amPayload("NodeKernelDeadlock", "opt-n1", "fp-opt"))
	optID := reply.Alerts[0].RunID
	_, reply = rec.post(t, amPayload("NodeDiskPressure", "win-n1", "fp-win"))
	winID := reply.Alerts[0].RunID
	waitFor(t, "the opted-out run to be deferred", 30*time.Second, func() bool {
		run := rec.run(t, optID)
		return run != nil && run.Status == runbooks.StatusDeferred && run.Hold.Kind == "excluded"
	})
	waitFor(t, "the windowed run to hold before drain", 30*time.Second, func() bool {
		run := rec.run(t, winID)
		return run != nil && run.Status == runbooks.StatusHeld && run.Hold.Kind == "window" && run.Hold.Step == "drain"
	})
	if node(t, "opt-n1").Spec.Unschedulable {
		t.Fatal("an opted-out node was cordoned")
	}
	if st := rec.status(t); len(st.Held) != 1 || len(st.Deferred) != 1 {
		t.Fatalf("status held %d deferred %d", len(st.Held), len(st.Deferred))
	}
}

// TestControlPlaneOneAtATime: alerts on two healthy control-plane nodes at
// once: the second run waits until the first is done.
func TestControlPlaneOneAtATime(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	cps := nodeNames("cpx", 3)
	createNodes(t, cps...)
	ctx := context.Background()
	must(t, cluster.EnsureNamespace(ctx, "node-healer"))
	for _, n := range cps {
		nd := node(t, n)
		nd.Labels[LabelControlPlane] = ""
		if _, err := cluster.Client.CoreV1().Nodes().Update(ctx, nd, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	routes := `
routes:
  - name: kubelet
    matchers: ['alertname="NodeFrequentKubeletRestart"']
    runbook: restart-kubelet
    params: {healthy_for: 1s, exec_timeout: 30s}
`
	rec, _ := startReceiverWith(t, testenv.NewRedis(t), "safety: {settle: 10ms, max_concurrent_runs: 5, breaker: {max_unhealthy_percent: 100}}\nworkers: {count: 4, claim_after: 2s}", routes, "cpx")
	var mu sync.Mutex
	maxCP := 0
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(15 * time.Millisecond):
			}
			active := 0
			for _, h := range rec.status(t).ActiveRuns {
				if strings.Contains(h, "/cpx-") {
					active++
				}
			}
			mu.Lock()
			maxCP = max(maxCP, active)
			mu.Unlock()
		}
	}()
	_, reply := rec.post(t, manyAlerts("NodeFrequentKubeletRestart", "firing", cps[:2], "cpx"))
	var runs []*runbooks.Run
	for _, a := range reply.Alerts {
		runs = append(runs, rec.waitRunFor(t, a.RunID, 90*time.Second))
	}
	close(stop)
	<-done
	for _, r := range runs {
		if r.Status != runbooks.StatusSucceeded {
			t.Fatalf("%s: %s %s", r.Node, r.Status, r.Error)
		}
	}
	first, second := runs[0], runs[1]
	if second.Timeline[0].Start.Before(first.Timeline[0].Start) {
		first, second = second, first
	}
	if !second.Timeline[0].Start.After(first.Timeline[len(first.Timeline)-1].End) {
		t.Fatalf("control-plane runs overlapped: %s started at %s, %s ended at %s", second.Node, second.Timeline[0].Start, first.Node, first.Timeline[len(first.Timeline)-1].End)
	}
	mu.Lock()
	defer mu.Unlock()
	if maxCP > 1 {
		t.Fatalf("%d control-plane runs held slots at once", maxCP)
	}
}
