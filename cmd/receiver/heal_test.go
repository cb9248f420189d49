package main

import (
	"context"
	"fmt"
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
	"github.com/node-healer/node-healer/internal/testenv"
)

// bmcEnv is the Redfish simulator for a set of kwok nodes: a power change
// on the BMC makes the node go NotReady (Off) and come back with a new
// boot ID (On), as a real machine's kubelet would.
type bmcEnv struct {
	Sim       *bmcsim.Sim
	Inventory string // inventory file for node-healer's config
	mu        sync.Mutex
	offSeen   map[string]time.Time
}

func startBMC(t *testing.T, systems ...bmcsim.System) *bmcEnv {
	t.Helper()
	env := &bmcEnv{offSeen: map[string]time.Time{}}
	queues := map[string]chan string{}
	for _, s := range systems {
		q := make(chan string, 16)
		queues[s.ID] = q
		node := s.ID
		go func() {
			for state := range q {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				switch state {
				case "Off":
					env.mu.Lock()
					env.offSeen[node] = time.Now()
					env.mu.Unlock()
					_ = cluster.PowerOff(ctx, node)
				case "On":
					_ = cluster.PowerOn(ctx, node)
				}
				cancel()
			}
		}()
	}
	sim, err := bmcsim.New(bmcsim.Options{Systems: systems, Username: "admin", Password: "bmc-pw",
		BootTime: 500 * time.Millisecond, ShutdownTime: 200 * time.Millisecond,
		OnPower: func(system, state string) {
			if q, ok := queues[system]; ok {
				q <- state
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(systems))
	for i, s := range systems {
		ids[i] = s.ID
	}
	srv, inventory, err := sim.ServeTLS(t.TempDir(), ids)
	must(t, err)
	t.Cleanup(func() {
		srv.Close()
		sim.Close()
		for _, q := range queues {
			close(q)
		}
	})
	env.Sim, env.Inventory = sim, inventory
	return env
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// resets lists the reset types a system received and applied.
func (b *bmcEnv) resets(node string) []string {
	var out []string
	for _, r := range b.Sim.Resets(node) {
		if r.Applied {
			out = append(out, r.Type)
		}
	}
	return out
}

const healRoutes = `
routes:
  - name: reboot
    matchers: ['alertname="NodeKernelDeadlock"']
    runbook: reboot
    params: {reboot_timeout: 4s, ready_timeout: 60s, healthy_for: 1s, drain_timeout: 20s}
  - name: reboot-quick-drain
    matchers: ['alertname="NodeReadonlyFilesystem"']
    runbook: reboot
    params: {reboot_timeout: 4s, ready_timeout: 60s, healthy_for: 1s, drain_timeout: 2s}
  - name: rehearse-reboot
    matchers: ['alertname="NodeRehearsal"']
    runbook: reboot
    dry_run: true
  - name: fence
    matchers: ['alertname="NodeNotReady"']
    runbook: fence
    params: {evacuate_timeout: 1s, ready_timeout: 60s, healthy_for: 1s}
`

func startHealer(t *testing.T, b *bmcEnv) *receiver {
	t.Helper()
	if testing.Short() {
		t.Skip("needs redis-server, kube-apiserver, kwok (integration)")
	}
	ctx := context.Background()
	must(t, cluster.EnsureNamespace(ctx, "node-healer"))
	rec, _ := startReceiverWith(t, testenv.NewRedis(t), "bmc: {inventory_file: "+b.Inventory+", timeout: 3s}", healRoutes, "healer")
	return rec
}

func stepsOutcomes(r *runbooks.Run) string {
	var s []string
	for _, e := range r.Timeline {
		s = append(s, e.Step+":"+string(e.Outcome))
	}
	return strings.Join(s, " ")
}

func TestRebootSoftWorks(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	createNodes(t, "soft-n1")
	b := startBMC(t, bmcsim.System{ID: "soft-n1"})
	rec := startHealer(t, b)
	ctx := context.Background()
	must(t, cluster.EnsureNamespace(ctx, "soft"))
	if _, err := cluster.CreateReplicaSetPods(ctx, "soft", "web", "soft-n1", 5); err != nil {
		t.Fatal(err)
	}
	_, reply := rec.post(t, amPayload("NodeKernelDeadlock", "soft-n1", "fp-soft"))
	run := rec.waitRunFor(t, reply.Alerts[0].RunID, 90*time.Second)
	want := "cordon:done drain:done capture:done soft-reboot:done wait-reboot:done power-cycle:skipped wait-ready:done verify-health:done uncordon:done"
	if run.Status != runbooks.StatusSucceeded || stepsOutcomes(run) != want {
		t.Fatalf("run %s: %s\n%s\nwant %s", run.Status, run.Error, stepsOutcomes(run), want)
	}
	if got := b.resets("soft-n1"); fmt.Sprint(got) != "[GracefulRestart]" {
		t.Fatalf("BMC resets %v, want one GracefulRestart", got)
	}
	n := node(t, "soft-n1")
	if n.Spec.Unschedulable || n.Annotations[runbooks.AnnotationCordonedBy] != "" {
		t.Fatalf("node not uncordoned: %v %v", n.Spec.Unschedulable, n.Annotations)
	}
	pods, _ := cluster.Client.CoreV1().Pods("soft").List(ctx, metav1.ListOptions{})
	if len(pods.Items) != 0 {
		t.Errorf("%d pods left after the drain", len(pods.Items))
	}
}

func TestRebootHungNodeIsPowerCycled(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	createNodes(t, "hung-n1")
	b := startBMC(t, bmcsim.System{ID: "hung-n1", Faults: bmcsim.Faults{IgnoreGraceful: true}})
	rec := startHealer(t, b)
	_, reply := rec.post(t, amPayload("NodeKernelDeadlock", "hung-n1", "fp-hung"))
	run := rec.waitRunFor(t, reply.Alerts[0].RunID, 90*time.Second)
	want := "cordon:done drain:done capture:done soft-reboot:done wait-reboot:done power-cycle:done wait-ready:done verify-health:done uncordon:done"
	if run.Status != runbooks.StatusSucceeded || stepsOutcomes(run) != want {
		t.Fatalf("run %s: %s\n%s\nwant %s", run.Status, run.Error, stepsOutcomes(run), want)
	}
	// The DMTF mockup allows no PowerCycle: ForceRestart is the hard reset.
	if got := b.resets("hung-n1"); fmt.Sprint(got) != "[GracefulRestart ForceRestart]" {
		t.Fatalf("BMC resets %v", got)
	}
	if !strings.Contains(run.Timeline[4].Detail, "reboot failed") || !strings.Contains(run.Timeline[5].Detail, "ForceRestart") {
		t.Errorf("timeline details: %q / %q", run.Timeline[4].Detail, run.Timeline[5].Detail)
	}
	for _, e := range run.Timeline {
		if e.End.IsZero() || e.End.Before(e.Start) {
			t.Errorf("step %s has no proper end time", e.Step)
		}
	}
	if node(t, "hung-n1").Spec.Unschedulable {
		t.Fatal("node not uncordoned")
	}
}

func TestBMCErrorOnResetSendsExactlyOne(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	createNodes(t, "err-n1")
	b := startBMC(t, bmcsim.System{ID: "err-n1", Faults: bmcsim.Faults{IgnoreGraceful: true, ResetStatus: 500, ApplyDespiteError: true}})
	rec := startHealer(t, b)
	_, reply := rec.post(t, amPayload("NodeKernelDeadlock", "err-n1", "fp-err"))
	run := rec.waitRunFor(t, reply.Alerts[0].RunID, 90*time.Second)
	if run.Status != runbooks.StatusSucceeded {
		t.Fatalf("run %s: %s\n%s", run.Status, run.Error, stepsOutcomes(run))
	}
	hard := 0
	for _, r := range b.Sim.Resets("err-n1") {
		if r.Type != "GracefulRestart" {
			hard++
		}
	}
	if hard != 1 {
		t.Fatalf("%d hard reset requests reached the BMC (%v), want exactly 1", hard, b.Sim.Resets("err-n1"))
	}
	if !strings.Contains(run.Timeline[5].Detail, "not resent") {
		t.Errorf("power-cycle detail %q", run.Timeline[5].Detail)
	}
}

// TestKilledAfterResetDoesNotResetAgain: the replica running the run dies
// right after the BMC applied the power-cycle (its request still hanging),
// before it could record the step's end. Another replica resumes the run
// from Redis and does not send a second reset.
func TestKilledAfterResetDoesNotResetAgain(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	createNodes(t, "kill-n1")
	b := startBMC(t, bmcsim.System{ID: "kill-n1", Faults: bmcsim.Faults{IgnoreGraceful: true, ResetHang: 20 * time.Second}})
	ctx := context.Background()
	must(t, cluster.EnsureNamespace(ctx, "node-healer"))
	r := testenv.NewRedis(t)
	extra := "bmc: {inventory_file: " + b.Inventory + ", timeout: 30s}"
	recA, stopA := startReceiverWith(t, r, extra, healRoutes, "replica-a")
	_, reply := recA.post(t, amPayload("NodeKernelDeadlock", "kill-n1", "fp-kill"))
	waitFor(t, "the power-cycle to be applied", 60*time.Second, func() bool {
		for _, x := range b.Sim.Resets("kill-n1") {
			if x.Type == "ForceRestart" && x.Applied {
				return true
			}
		}
		return false
	})
	stopA() // replica A dies while its reset request hangs
	recB, _ := startReceiverWith(t, r, extra, healRoutes, "replica-b")
	run := recB.waitRunFor(t, reply.Alerts[0].RunID, 90*time.Second)
	if run.Status != runbooks.StatusSucceeded {
		t.Fatalf("run %s: %s\n%s", run.Status, run.Error, stepsOutcomes(run))
	}
	if got := b.resets("kill-n1"); fmt.Sprint(got) != "[GracefulRestart ForceRestart]" {
		t.Fatalf("BMC resets %v: the resumed run must not reset again", got)
	}
	workers := map[string]bool{}
	for _, e := range run.Timeline {
		workers[strings.SplitN(e.Worker, "-", 3)[0]+"-"+strings.SplitN(e.Worker, "-", 3)[1]] = true
	}
	if !workers["replica-a"] || !workers["replica-b"] {
		t.Errorf("timeline workers %v: both replicas should appear", workers)
	}
}

func TestOperatorCordonSurvivesReboot(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	createNodes(t, "opr-n1")
	b := startBMC(t, bmcsim.System{ID: "opr-n1"})
	rec := startHealer(t, b)
	ctx := context.Background()
	n := node(t, "opr-n1")
	n.Spec.Unschedulable = true
	if _, err := cluster.Client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, reply := rec.post(t, amPayload("NodeKernelDeadlock", "opr-n1", "fp-opr"))
	run := rec.waitRunFor(t, reply.Alerts[0].RunID, 90*time.Second)
	if run.Status != runbooks.StatusSucceeded {
		t.Fatalf("run %s: %s", run.Status, run.Error)
	}
	if n := node(t, "opr-n1"); !n.Spec.Unschedulable {
		t.Fatal("the operator's cordon was removed")
	}
}

func TestRebootDryRunTouchesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	createNodes(t, "dryr-n1")
	b := startBMC(t, bmcsim.System{ID: "dryr-n1"})
	rec := startHealer(t, b)
	ctx := context.Background()
	must(t, cluster.EnsureNamespace(ctx, "dryr"))
	if _, err := cluster.CreateReplicaSetPods(ctx, "dryr", "web", "dryr-n1", 3); err != nil {
		t.Fatal(err)
	}
	_, reply := rec.post(t, amPayload("NodeRehearsal", "dryr-n1", "fp-dryr"))
	run := rec.waitRunFor(t, reply.Alerts[0].RunID, 60*time.Second)
	if run.Status != runbooks.StatusSucceeded || !run.DryRun {
		t.Fatalf("run %s %s", run.Status, stepsOutcomes(run))
	}
	if !strings.Contains(run.Timeline[1].Detail, "would drain") || !strings.Contains(run.Timeline[1].Detail, "dryr/web-") {
		t.Errorf("drain plan not reported: %q", run.Timeline[1].Detail)
	}
	if len(b.Sim.Resets("dryr-n1")) != 0 {
		t.Fatal("dry run sent a reset to the BMC")
	}
	if n := node(t, "dryr-n1"); n.Spec.Unschedulable || len(n.Annotations[runbooks.AnnotationCordonedBy]) > 0 {
		t.Fatal("dry run cordoned the node")
	}
	pods, _ := cluster.Client.CoreV1().Pods("dryr").List(ctx, metav1.ListOptions{})
	if len(pods.Items) != 3 {
		t.Fatalf("dry run evicted pods: %d left", len(pods.Items))
	}
}

func TestPDBBlocksDrainEscalatesWithoutReboot(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	createNodes(t, "pdb-n1")
	b := startBMC(t, bmcsim.System{ID: "pdb-n1"})
	rec := startHealer(t, b)
	ctx := context.Background()
	must(t, cluster.EnsureNamespace(ctx, "pdb"))
	if _, err := cluster.CreateReplicaSetPods(ctx, "pdb", "db", "pdb-n1", 1); err != nil {
		t.Fatal(err)
	}
	one := intstr.FromInt32(1)
	pdb, err := cluster.Client.PolicyV1().PodDisruptionBudgets("pdb").Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// No disruption controller runs here: publish "no disruption allowed".
	pdb.Status = policyv1.PodDisruptionBudgetStatus{ObservedGeneration: pdb.Generation, DisruptionsAllowed: 0, CurrentHealthy: 1, DesiredHealthy: 1, ExpectedPods: 1}
	if _, err := cluster.Client.PolicyV1().PodDisruptionBudgets("pdb").UpdateStatus(ctx, pdb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, reply := rec.post(t, amPayload("NodeReadonlyFilesystem", "pdb-n1", "fp-pdb"))
	run := rec.waitRunFor(t, reply.Alerts[0].RunID, 60*time.Second)
	if run.Status != runbooks.StatusEscalated || !strings.Contains(run.Error, "drain did not finish") {
		t.Fatalf("run %s: %q\n%s", run.Status, run.Error, stepsOutcomes(run))
	}
	if len(b.Sim.Resets("pdb-n1")) != 0 {
		t.Fatal("a node whose drain failed was rebooted")
	}
	n := node(t, "pdb-n1")
	if !n.Spec.Unschedulable || n.Labels[runbooks.LabelNeedsAttention] != "true" || n.Annotations[runbooks.AnnotationNeedsAttention] == "" {
		t.Fatalf("node not left cordoned and marked: %v %v %v", n.Spec.Unschedulable, n.Labels, n.Annotations)
	}
	found := false
	for _, e := range nodeEvents(t, "pdb-n1") {
		found = found || (e.Reason == "NodeHealerEscalated" && e.Type == corev1.EventTypeWarning)
	}
	if !found {
		t.Error("no Warning Event NodeHealerEscalated")
	}
}

// TestFenceUnresponsiveNode: a NotReady node with a StatefulSet pod is
// powered off; the out-of-service taint appears only once the BMC says
// Off, and is gone when the node is back and healthy.
func TestFenceUnresponsiveNode(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	createNodes(t, "fence-n1")
	b := startBMC(t, bmcsim.System{ID: "fence-n1"})
	rec := startHealer(t, b)
	ctx := context.Background()
	must(t, cluster.EnsureNamespace(ctx, "fence"))
	if _, err := cluster.CreatePod(ctx, "fence", "db-0", "fence-n1", func(p *corev1.Pod) {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", UID: "0000-db", Controller: ptrTo(true)}}
	}); err != nil {
		t.Fatal(err)
	}
	must(t, cluster.SetNodeNotReady(ctx, "fence-n1"))
	// Watch the taint and the BMC's power state together.
	var mu sync.Mutex
	var taintedWhileOn, taintSeen bool
	stopWatch := make(chan struct{})
	go func() {
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(20 * time.Millisecond):
			}
			n, err := cluster.Client.CoreV1().Nodes().Get(ctx, "fence-n1", metav1.GetOptions{})
			if err != nil {
				continue
			}
			for _, tn := range n.Spec.Taints {
				if tn.Key == runbooks.TaintOutOfService {
					state := b.Sim.PowerState("fence-n1")
					mu.Lock()
					taintSeen = true
					if state != "Off" {
						// On again is legitimate only after the power-on step.
						taintedWhileOn = taintedWhileOn || len(b.resets("fence-n1")) < 2
					}
					mu.Unlock()
				}
			}
		}
	}()
	_, reply := rec.post(t, amPayload("NodeNotReady", "fence-n1", "fp-fence"))
	run := rec.waitRunFor(t, reply.Alerts[0].RunID, 90*time.Second)
	close(stopWatch)
	want := "cordon:done capture:skipped power-off:done out-of-service:done wait-evacuated:done power-on:done wait-ready:done verify-health:done remove-out-of-service:done uncordon:done"
	if run.Status != runbooks.StatusSucceeded || stepsOutcomes(run) != want {
		t.Fatalf("run %s: %s\n%s\nwant %s", run.Status, run.Error, stepsOutcomes(run), want)
	}
	mu.Lock()
	defer mu.Unlock()
	if !taintSeen || taintedWhileOn {
		t.Fatalf("taint seen %v, tainted while powered on %v", taintSeen, taintedWhileOn)
	}
	for _, tn := range node(t, "fence-n1").Spec.Taints {
		if tn.Key == runbooks.TaintOutOfService {
			t.Fatal("out-of-service taint left on the node")
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

func (r *receiver) waitRunFor(t *testing.T, id string, d time.Duration) *runbooks.Run {
	t.Helper()
	var run *runbooks.Run
	waitFor(t, "run "+id+" to finish", d, func() bool {
		run = r.run(t, id)
		return run != nil && run.Status.Final()
	})
	return run
}

func TestRestartKubeletThroughNodeExecPod(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	createNodes(t, "exec-n1")
	b := startBMC(t, bmcsim.System{ID: "exec-n1"})
	if testing.Short() {
		t.Skip("integration")
	}
	ctx := context.Background()
	must(t, cluster.EnsureNamespace(ctx, "node-healer"))
	routes := `
routes:
  - name: kubelet
    matchers: ['alertname="NodeFrequentKubeletRestart"']
    runbook: restart-kubelet
    params: {healthy_for: 1s, exec_timeout: 30s}
`
	rec, _ := startReceiverWith(t, testenv.NewRedis(t), "bmc: {inventory_file: "+b.Inventory+"}\nnode_exec: {namespace: node-healer, image: busybox:1.37}", routes, "exec")
	// Watch the node-exec pod while the run goes on.
	seen := make(chan *corev1.Pod, 1)
	go func() {
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			pods, err := cluster.Client.CoreV1().Pods("node-healer").List(ctx, metav1.ListOptions{LabelSelector: "node-healer.io/action=restart-kubelet"})
			if err == nil && len(pods.Items) > 0 {
				seen <- &pods.Items[0]
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		close(seen)
	}()
	_, reply := rec.post(t, amPayload("NodeFrequentKubeletRestart", "exec-n1", "fp-exec"))
	run := rec.waitRunFor(t, reply.Alerts[0].RunID, 60*time.Second)
	if run.Status != runbooks.StatusSucceeded || stepsOutcomes(run) != "restart-kubelet:done wait-ready:done verify-health:done" {
		t.Fatalf("run %s: %s\n%s", run.Status, run.Error, stepsOutcomes(run))
	}
	p := <-seen
	if p == nil {
		t.Fatal("no node-exec pod was seen")
	}
	c := p.Spec.Containers[0]
	if p.Spec.NodeName != "exec-n1" || !p.Spec.HostPID || c.SecurityContext == nil || !*c.SecurityContext.Privileged ||
		strings.Join(c.Command, " ") != "nsenter -t 1 -m -u -i -n -p -- systemctl restart kubelet" || c.Image != "busybox:1.37" {
		t.Fatalf("node-exec pod spec: node %s hostPID %v command %v image %s", p.Spec.NodeName, p.Spec.HostPID, c.Command, c.Image)
	}
	if len(p.Spec.Tolerations) != 1 || p.Spec.Tolerations[0].Operator != corev1.TolerationOpExists {
		t.Errorf("tolerations %v: the pod must tolerate every taint", p.Spec.Tolerations)
	}
	waitFor(t, "the node-exec pod to be cleaned up", 20*time.Second, func() bool {
		pods, err := cluster.Client.CoreV1().Pods("node-healer").List(ctx, metav1.ListOptions{LabelSelector: "node-healer.io/action=restart-kubelet"})
		return err == nil && len(pods.Items) == 0
	})
	if !strings.Contains(run.Timeline[0].Detail, "Succeeded") {
		t.Errorf("outcome not recorded: %q", run.Timeline[0].Detail)
	}
}
