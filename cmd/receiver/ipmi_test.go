package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/testenv"
)

// ipmiEnv is one OpenIPMI ipmi_sim per kwok node. The simulated server
// (ipmi_sim's startcmd) starting and stopping drives the node: stopped is
// NotReady, started again is a boot with a new boot ID. What a test counts
// is the server's own log of the power requests the simulator acted on
// (Count("off") is a power-down: a power off, or a power cycle's first
// half), not node-healer's account.
type ipmiEnv struct {
	Sims      map[string]*testenv.IPMISim
	Inventory string // inventory file (protocol: ipmi) for node-healer's config
	Password  string // the password file it names
}

// startIPMI starts a simulator for each node (created beforehand with
// createNodes) and writes their inventory.
func startIPMI(t *testing.T, nodes ...string) *ipmiEnv {
	t.Helper()
	env := &ipmiEnv{Sims: map[string]*testenv.IPMISim{}}
	ports := map[string]int{}
	for _, n := range nodes {
		var mu sync.Mutex
		booted := false
		s := testenv.StartIPMISimT(t, testenv.IPMISimOptions{Name: n, Password: "ipmi-pw", OnPower: func(on bool) {
			mu.Lock()
			defer mu.Unlock()
			if !booted {
				// The first start is the server that was already running
				// (the kwok node is Ready): no new boot.
				booted = on
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if on {
				_ = cluster.PowerOn(ctx, n)
			} else {
				_ = cluster.PowerOff(ctx, n)
			}
		}})
		env.Sims[n] = s
		ports[n] = s.Port
	}
	env.Inventory, env.Password = ipmiInventory(t, "ipmi-pw", ports)
	return env
}

// ipmiInventory writes an inventory naming an IPMI BMC on 127.0.0.1 at
// each node's port, and its password file.
func ipmiInventory(t *testing.T, password string, ports map[string]int) (inventory, passwordFile string) {
	t.Helper()
	dir := t.TempDir()
	passwordFile = filepath.Join(dir, "ipmi-password")
	must(t, os.WriteFile(passwordFile, []byte(password+"\n"), 0o600))
	inv := "defaults:\n  protocol: ipmi\n  username: admin\n  password_file: ipmi-password\n  privilege: operator\nnodes:\n"
	for n, p := range ports {
		inv += fmt.Sprintf("  %s:\n    host: 127.0.0.1\n    port: %d\n    interface: lanplus\n", n, p)
	}
	inventory = filepath.Join(dir, "inventory.yml")
	must(t, os.WriteFile(inventory, []byte(inv), 0o600))
	return inventory, passwordFile
}

// powerRequests are the power requests a simulated server saw: power
// downs (off, or a cycle), resets and graceful shutdowns.
func powerRequests(s *testenv.IPMISim) string {
	return fmt.Sprintf("off=%d reset=%d soft=%d", s.Count("off"), s.Count("reset"), s.Count("soft"))
}

// ipmiRoutes: the hung node's route keeps the soft reboot through the BMC
// and waits longer for it than the BMC waits between a soft shutdown and
// power on (bmc.DefaultOffWait, 2m: not settable from the config), so the
// power-cycle follows a soft reboot that has really given up.
const ipmiRoutes = `
routes:
  - name: reboot-ipmi-hung
    matchers: ['alertname="NodeKernelDeadlock"']
    runbook: reboot
    params: {soft_reboot: bmc, reboot_timeout: 2m10s, ready_timeout: 60s, healthy_for: 1s, drain_timeout: 20s}
  - name: reboot-ipmi
    matchers: ['alertname="NodeReadonlyFilesystem"']
    runbook: reboot
    params: {soft_reboot: bmc, reboot_timeout: 20s, ready_timeout: 60s, healthy_for: 1s, drain_timeout: 20s}
  - name: fence-ipmi
    matchers: ['alertname="NodeNotReady"']
    runbook: fence
    params: {evacuate_timeout: 1s, ready_timeout: 60s, healthy_for: 1s}
`

func startIPMIHealer(t *testing.T, inventory string) *receiver {
	t.Helper()
	must(t, cluster.EnsureNamespace(context.Background(), "node-healer"))
	rec, _ := startReceiverWith(t, testenv.NewRedis(t), "bmc: {inventory_file: "+inventory+", timeout: 3s}", ipmiRoutes, "ipmi")
	return rec
}

// TestIPMIRebootHungNodeIsPowerCycled: the OS ignores the soft (ACPI)
// shutdown; the soft reboot gives up, exactly one chassis power cycle
// reaches the simulator, the node comes back and is uncordoned.
func TestIPMIRebootHungNodeIsPowerCycled(t *testing.T) {
	createNodes(t, "ipmi-hung-n1")
	b := startIPMI(t, "ipmi-hung-n1")
	sim := b.Sims["ipmi-hung-n1"]
	must(t, sim.SetHung(true))
	rec := startIPMIHealer(t, b.Inventory)
	_, reply := rec.post(t, amPayload("NodeKernelDeadlock", "ipmi-hung-n1", "fp-ipmi-hung"))
	run := rec.waitRunFor(t, reply.Alerts[0].RunID, 4*time.Minute)
	want := "cordon:done drain:done capture:done soft-reboot:done wait-reboot:done power-cycle:done wait-ready:done verify-health:done uncordon:done"
	if run.Status != runbooks.StatusSucceeded || stepsOutcomes(run) != want {
		t.Fatalf("run %s: %s\n%s\nwant %s", run.Status, run.Error, stepsOutcomes(run), want)
	}
	// One soft shutdown request (ignored), then one power-down: the cycle.
	if got := powerRequests(sim); got != "off=1 reset=0 soft=1" {
		t.Fatalf("the simulator acted on %s, want off=1 reset=0 soft=1 (one chassis power cycle): %q", got, sim.Events())
	}
	if n := sim.Count("start"); n != 2 {
		t.Fatalf("the server started %d times, want 2 (once more after the cycle): %q", n, sim.Events())
	}
	steps := map[string]string{}
	for _, e := range run.Timeline {
		steps[e.Step] = e.Detail
	}
	if d := steps["soft-reboot"]; !strings.Contains(d, "chassis power soft") || !strings.Contains(d, "power on not sent") {
		t.Errorf("soft-reboot detail %q: want the IPMI command and that power on was not sent", d)
	}
	if d := steps["wait-reboot"]; !strings.Contains(d, "reboot failed") {
		t.Errorf("wait-reboot detail %q", d)
	}
	if d := steps["power-cycle"]; !strings.Contains(d, "chassis power cycle") {
		t.Errorf("power-cycle detail %q: want the IPMI command sent", d)
	}
	if n := node(t, "ipmi-hung-n1"); n.Spec.Unschedulable || n.Annotations[runbooks.AnnotationCordonedBy] != "" {
		t.Fatalf("node not uncordoned: %v %v", n.Spec.Unschedulable, n.Annotations)
	}
	if m := rec.metricsText(t); !strings.Contains(m, `node_healer_bmc_resets_total{protocol="ipmi",type="cycle"} 1`) {
		t.Errorf("no resets_total{ipmi,cycle} 1 in /metrics:\n%s", grepLines(m, "node_healer_bmc_"))
	}
}

// TestIPMIRebootSoftWorks: the OS honours the soft shutdown; the BMC
// powers the server on again; no power cycle.
func TestIPMIRebootSoftWorks(t *testing.T) {
	createNodes(t, "ipmi-soft-n1")
	b := startIPMI(t, "ipmi-soft-n1")
	sim := b.Sims["ipmi-soft-n1"]
	rec := startIPMIHealer(t, b.Inventory)
	_, reply := rec.post(t, amPayload("NodeReadonlyFilesystem", "ipmi-soft-n1", "fp-ipmi-soft"))
	run := rec.waitRunFor(t, reply.Alerts[0].RunID, 2*time.Minute)
	want := "cordon:done drain:done capture:done soft-reboot:done wait-reboot:done power-cycle:skipped wait-ready:done verify-health:done uncordon:done"
	if run.Status != runbooks.StatusSucceeded || stepsOutcomes(run) != want {
		t.Fatalf("run %s: %s\n%s\nwant %s", run.Status, run.Error, stepsOutcomes(run), want)
	}
	if got := powerRequests(sim); got != "off=0 reset=0 soft=1" {
		t.Fatalf("the simulator acted on %s, want one soft shutdown and no power-down: %q", got, sim.Events())
	}
	if n := sim.Count("start"); n != 2 {
		t.Fatalf("the server started %d times, want 2: %q", n, sim.Events())
	}
	if d := run.Timeline[3].Detail; !strings.Contains(d, "chassis power soft+on") {
		t.Errorf("soft-reboot detail %q: want the IPMI commands sent", d)
	}
	if node(t, "ipmi-soft-n1").Spec.Unschedulable {
		t.Fatal("node not uncordoned")
	}
}

// TestIPMIWrongPassword: the BMC refuses the session; the run escalates
// saying so, the simulator acts on no power request, and node-healer
// does not keep knocking (no retry storm).
func TestIPMIWrongPassword(t *testing.T) {
	createNodes(t, "ipmi-pw-n1")
	b := startIPMI(t, "ipmi-pw-n1")
	sim := b.Sims["ipmi-pw-n1"]
	must(t, os.WriteFile(b.Password, []byte("not-the-password\n"), 0o600))
	rec := startIPMIHealer(t, b.Inventory)
	_, reply := rec.post(t, amPayload("NodeReadonlyFilesystem", "ipmi-pw-n1", "fp-ipmi-pw"))
	run := rec.waitRunFor(t, reply.Alerts[0].RunID, 2*time.Minute)
	requests := ipmiRequests(t, rec)
	if run.Status != runbooks.StatusEscalated || !strings.Contains(run.Error, "authentication failed") {
		t.Fatalf("run %s after %d attempts (%d IPMI requests): %q\n%s", run.Status, run.Attempts, requests, run.Error, stepsOutcomes(run))
	}
	if strings.Contains(run.Error, "not-the-password") || strings.Contains(rec.Log.String(), "not-the-password") {
		t.Fatal("the password shows in the run or the log")
	}
	if got := powerRequests(sim); got != "off=0 reset=0 soft=0" {
		t.Fatalf("the simulator acted on %s with a wrong password: %q", got, sim.Events())
	}
	if requests > 10 {
		t.Fatalf("%d IPMI requests for one run with a wrong password: a retry storm", requests)
	}
	if n := node(t, "ipmi-pw-n1"); !n.Spec.Unschedulable || n.Labels[runbooks.LabelNeedsAttention] != "true" {
		t.Fatalf("node not left cordoned and marked: %v %v", n.Spec.Unschedulable, n.Labels)
	}
}

// TestIPMIUnreachable: nothing listens on the BMC's port; the run
// escalates once the BMC timeout has passed.
func TestIPMIUnreachable(t *testing.T) {
	createNodes(t, "ipmi-down-n1")
	port, err := testenv.FreePort()
	must(t, err)
	inv, _ := ipmiInventory(t, "ipmi-pw", map[string]int{"ipmi-down-n1": port})
	rec := startIPMIHealer(t, inv)
	_, reply := rec.post(t, amPayload("NodeReadonlyFilesystem", "ipmi-down-n1", "fp-ipmi-down"))
	run := rec.waitRunFor(t, reply.Alerts[0].RunID, 2*time.Minute)
	requests := ipmiRequests(t, rec)
	if run.Status != runbooks.StatusEscalated || !strings.Contains(run.Error, "unreachable") {
		t.Fatalf("run %s after %d attempts (%d IPMI requests): %q\n%s", run.Status, run.Attempts, requests, run.Error, stepsOutcomes(run))
	}
	if requests > 10 {
		t.Fatalf("%d IPMI requests for one run with an unreachable BMC: a retry storm", requests)
	}
}

// TestIPMIFenceUnresponsiveNode: a NotReady node with a StatefulSet pod
// is powered off over IPMI; the out-of-service taint appears only while
// the simulated server is stopped, and is gone once it is back.
func TestIPMIFenceUnresponsiveNode(t *testing.T) {
	createNodes(t, "ipmi-fence-n1")
	b := startIPMI(t, "ipmi-fence-n1")
	sim := b.Sims["ipmi-fence-n1"]
	rec := startIPMIHealer(t, b.Inventory)
	ctx := context.Background()
	must(t, cluster.EnsureNamespace(ctx, "ipmi-fence"))
	if _, err := cluster.CreatePod(ctx, "ipmi-fence", "db-0", "ipmi-fence-n1", func(p *corev1.Pod) {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", UID: "0000-ipmi-db", Controller: ptrTo(true)}}
	}); err != nil {
		t.Fatal(err)
	}
	must(t, cluster.SetNodeNotReady(ctx, "ipmi-fence-n1"))
	// Watch the taint and the simulated server together: tainted is fine
	// only once the server stopped, and until it is started again by the
	// power-on step.
	var mu sync.Mutex
	var taintedWhileOn, taintSeen bool
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(20 * time.Millisecond):
			}
			n, err := cluster.Client.CoreV1().Nodes().Get(ctx, "ipmi-fence-n1", metav1.GetOptions{})
			if err != nil {
				continue
			}
			for _, tn := range n.Spec.Taints {
				if tn.Key == runbooks.TaintOutOfService {
					stops, starts := sim.Count("stop"), sim.Count("start")
					mu.Lock()
					taintSeen = true
					// Still running: never stopped, or (before power on)
					// not stopped since it started.
					taintedWhileOn = taintedWhileOn || stops == 0 || (starts == 1 && lastPowerEvent(sim) != "stop")
					mu.Unlock()
				}
			}
		}
	}()
	_, reply := rec.post(t, amPayload("NodeNotReady", "ipmi-fence-n1", "fp-ipmi-fence"))
	run := rec.waitRunFor(t, reply.Alerts[0].RunID, 2*time.Minute)
	close(stopWatch)
	<-watched
	want := "cordon:done capture:skipped power-off:done out-of-service:done wait-evacuated:done power-on:done wait-ready:done verify-health:done remove-out-of-service:done uncordon:done"
	if run.Status != runbooks.StatusSucceeded || stepsOutcomes(run) != want {
		t.Fatalf("run %s: %s\n%s\nwant %s", run.Status, run.Error, stepsOutcomes(run), want)
	}
	mu.Lock()
	defer mu.Unlock()
	if !taintSeen || taintedWhileOn {
		t.Fatalf("taint seen %v, tainted while the server ran %v: %q", taintSeen, taintedWhileOn, sim.Events())
	}
	// One power off (the server saw it), no cycle, no reset; started again.
	if got := powerRequests(sim); got != "off=1 reset=0 soft=0" {
		t.Fatalf("the simulator acted on %s, want one power off: %q", got, sim.Events())
	}
	if n := sim.Count("start"); n != 2 {
		t.Fatalf("the server started %d times, want 2 (power on): %q", n, sim.Events())
	}
	for _, tn := range node(t, "ipmi-fence-n1").Spec.Taints {
		if tn.Key == runbooks.TaintOutOfService {
			t.Fatal("out-of-service taint left on the node")
		}
	}
}

// lastPowerEvent is "start" or "stop": the server's last change.
func lastPowerEvent(s *testenv.IPMISim) string {
	ev := s.Events()
	for i := len(ev) - 1; i >= 0; i-- {
		if f := strings.Fields(ev[i]); len(f) > 0 && (f[0] == "start" || f[0] == "stop") {
			return f[0]
		}
	}
	return ""
}

var ipmiRequestLine = regexp.MustCompile(`(?m)^node_healer_bmc_requests_total\{[^}]*protocol="ipmi"[^}]*\} (\d+)`)

// ipmiRequests sums node_healer_bmc_requests_total{protocol="ipmi"}.
func ipmiRequests(t *testing.T, rec *receiver) int {
	t.Helper()
	m := rec.metricsText(t)
	n := 0
	for _, x := range ipmiRequestLine.FindAllStringSubmatch(m, -1) {
		v, _ := strconv.Atoi(x[1])
		n += v
	}
	t.Logf("IPMI requests: %d\n%s", n, grepLines(m, "node_healer_bmc_requests_total"))
	return n
}
