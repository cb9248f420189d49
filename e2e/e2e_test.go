// Package e2e runs node-healer's whole pipeline on this machine — NPD,
// Prometheus with the shipped rules, Alertmanager with the shipped config,
// node-healer's receiver binary, kwok nodes and a BMC simulator — and
// checks what an operator relies on, end to end. Every test starts its own
// pipeline (internal/pipeline), so they are independent.
package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/bmcsim"
	"github.com/node-healer/node-healer/internal/pipeline"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/testenv"
)

// receiverBin is the receiver binary built once for the package.
var receiverBin string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "node-healer-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	receiverBin, err = pipeline.BuildReceiver(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// Test-only shortenings (the demo keeps DemoParams): the run waits 8 s,
// not 20 s, for a hung node to go down, and 3 s of health before uncordon.
var fastParams = map[string]string{"reboot_timeout": "8s", "healthy_for": "3s"}

func start(t *testing.T, o pipeline.Options) *pipeline.Pipeline {
	t.Helper()
	if testing.Short() {
		t.Skip("end to end: starts the whole pipeline")
	}
	o.Dir = t.TempDir()
	o.Receiver = receiverBin
	if o.Params == nil {
		o.Params = fastParams
	}
	if o.PodsPerNode == 0 {
		o.PodsPerNode = 10
	}
	var progress strings.Builder
	o.Progress = &progress
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	started := time.Now()
	p, err := pipeline.Start(ctx, o)
	if err != nil {
		t.Fatalf("start the pipeline: %v\n%s", err, progress.String())
	}
	t.Logf("pipeline up in %s", time.Since(started).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("start-up:\n%s\n%s", progress.String(), p.LogTails(40))
		}
		p.Stop()
	})
	return p
}

// follow injects the kernel deadlock line on node and follows the run.
func follow(t *testing.T, p *pipeline.Pipeline, node string, within time.Duration) *pipeline.Trace {
	t.Helper()
	at, err := p.WriteKernelLog(node, pipeline.LineKernelDeadlock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	tr, err := p.Follow(ctx, pipeline.FollowOptions{Node: node, Alert: "NodeKernelDeadlock", Since: at,
		Emit: func(e pipeline.Event) {
			t.Logf("%6.1fs %-12s %-16s %s", e.Since.Seconds(), e.Source, e.Title, e.Detail)
		}})
	if err != nil {
		t.Fatalf("follow the heal of %s: %v", node, err)
	}
	return tr
}

func outcomes(r *runbooks.Run) string {
	var s []string
	for _, e := range r.Timeline {
		s = append(s, e.Step+":"+string(e.Outcome))
	}
	return strings.Join(s, " ")
}

func cordoned(t *testing.T, p *pipeline.Pipeline, node string) bool {
	t.Helper()
	c, err := p.Cordoned(context.Background(), node)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func waitFor(t *testing.T, what string, timeout time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkTimeline: every step ended, in order, no step ending before it
// started or starting before the previous one ended.
func checkTimeline(t *testing.T, r *runbooks.Run) {
	t.Helper()
	var prev time.Time
	for _, e := range r.Timeline {
		if e.End.IsZero() || e.End.Before(e.Start) || e.Start.Before(prev) {
			t.Errorf("timeline not monotonic at %s: start %s end %s (previous end %s)", e.Step, e.Start, e.End, prev)
		}
		prev = e.End
	}
}

func TestKernelDeadlockHungNodeIsPowerCycled(t *testing.T) {
	p := start(t, pipeline.Options{Faults: map[string]bmcsim.Faults{"node-1": {IgnoreGraceful: true}}})
	tr := follow(t, p, "node-1", 150*time.Second)
	want := "cordon:done drain:done capture:done soft-reboot:done wait-reboot:done power-cycle:done wait-ready:done verify-health:done uncordon:done"
	if tr.Run.Status != runbooks.StatusSucceeded || outcomes(tr.Run) != want {
		t.Fatalf("run %s %q\n got %s\nwant %s", tr.Run.Status, tr.Run.Error, outcomes(tr.Run), want)
	}
	checkTimeline(t, tr.Run)
	if got := fmt.Sprint(p.Resets("node-1")); got != "[GracefulRestart ForceRestart]" {
		t.Errorf("BMC resets %s, want a graceful restart then one hard reset", got)
	}
	if cordoned(t, p, "node-1") {
		t.Error("node-1 is still cordoned")
	}
	s := tr.Summary()
	if s.Alertmanager <= 0 || s.Alertmanager > 30*time.Second {
		t.Errorf("detection took %s; the seed promises < 30 s", s.Alertmanager)
	}
	if s.Evicted != 10 {
		t.Errorf("drain evicted %d pods, want the node's 10", s.Evicted)
	}
	// The reboot cleared the condition: the alert resolves in Prometheus.
	waitFor(t, "NodeKernelDeadlock to stop firing in Prometheus", 30*time.Second, func() bool {
		s, err := p.PrometheusState(context.Background(), "NodeKernelDeadlock", "node-1")
		return err == nil && s == ""
	})
	t.Logf("detection %s, cordon %s, uncordon %s", s.Alertmanager, s.Cordon, s.Uncordon)
}

func TestKernelDeadlockSoftRebootWorks(t *testing.T) {
	p := start(t, pipeline.Options{})
	tr := follow(t, p, "node-1", 150*time.Second)
	want := "cordon:done drain:done capture:done soft-reboot:done wait-reboot:done power-cycle:skipped wait-ready:done verify-health:done uncordon:done"
	if tr.Run.Status != runbooks.StatusSucceeded || outcomes(tr.Run) != want {
		t.Fatalf("run %s %q\n got %s\nwant %s", tr.Run.Status, tr.Run.Error, outcomes(tr.Run), want)
	}
	checkTimeline(t, tr.Run)
	if got := fmt.Sprint(p.Resets("node-1")); got != "[GracefulRestart]" {
		t.Errorf("BMC resets %s, want only GracefulRestart", got)
	}
	if cordoned(t, p, "node-1") {
		t.Error("node-1 is still cordoned")
	}
}

// TestKernelDeadlockHungNodeOverIPMI is the seed's headline scenario on
// an IPMI fleet (make demo BMC=ipmi): the same pipeline with one OpenIPMI
// ipmi_sim per node instead of the Redfish simulator. The hung OS ignores
// the soft (ACPI) shutdown; exactly one chassis power cycle reaches the
// simulator (counted from the simulated server's own log), the node boots
// again and is uncordoned.
func TestKernelDeadlockHungNodeOverIPMI(t *testing.T) {
	p := start(t, pipeline.Options{BMC: pipeline.BMCIPMI, Faults: map[string]bmcsim.Faults{"node-1": {IgnoreGraceful: true}}})
	tr := follow(t, p, "node-1", 150*time.Second)
	want := "cordon:done drain:done capture:done soft-reboot:done wait-reboot:done power-cycle:done wait-ready:done verify-health:done uncordon:done"
	if tr.Run.Status != runbooks.StatusSucceeded || outcomes(tr.Run) != want {
		t.Fatalf("run %s %q\n got %s\nwant %s", tr.Run.Status, tr.Run.Error, outcomes(tr.Run), want)
	}
	checkTimeline(t, tr.Run)
	// One soft shutdown request (ignored by the hung OS), then one power
	// down: the cycle's first half. Nothing on the other nodes.
	if got := fmt.Sprint(p.Resets("node-1")); got != "[soft power-down]" {
		t.Errorf("the simulator acted on %s, want [soft power-down] (one chassis power soft, one chassis power cycle): %q", got, p.IPMI["node-1"].Events())
	}
	if n := p.IPMI["node-1"].Count("start"); n != 2 {
		t.Errorf("node-1's server started %d times, want 2 (once more after the cycle): %q", n, p.IPMI["node-1"].Events())
	}
	for _, n := range p.Nodes[1:] {
		if r := p.Resets(n); len(r) != 0 {
			t.Errorf("%s's BMC acted on %v", n, r)
		}
	}
	if e := tr.Step("power-cycle"); e == nil || !strings.Contains(e.Detail, "chassis power cycle") {
		t.Errorf("the power-cycle step does not name the IPMI command: %+v", e)
	}
	if cordoned(t, p, "node-1") {
		t.Error("node-1 is still cordoned")
	}
	s := tr.Summary()
	t.Logf("detection %s, cordon %s, uncordon %s", s.Alertmanager, s.Cordon, s.Uncordon)
}

// TestSilencePausesThenRunProceeds: an operator silences the node with
// the real amtool before the fault; nothing happens to the node while the
// silence is active; once it expires the run proceeds.
func TestSilencePausesThenRunProceeds(t *testing.T) {
	// group_interval 10s instead of 1m: once the silence expires,
	// Alertmanager notifies at the group's next flush.
	p := start(t, pipeline.Options{GroupInterval: 10 * time.Second})
	amtool, err := testenv.ToolPath("amtool")
	if err != nil {
		t.Fatal(err)
	}
	const silenceFor = 25 * time.Second
	out, err := exec.Command(amtool, "--alertmanager.url="+p.Alertmanager.URL, "silence", "add", "node=node-1",
		"--duration="+silenceFor.String(), "--author=e2e", "--comment=maintenance").CombinedOutput()
	if err != nil {
		t.Fatalf("amtool silence add: %v: %s", err, out)
	}
	silenced := time.Now()
	t.Logf("amtool silence add node=node-1 → %s", strings.TrimSpace(string(out)))
	at, err := p.WriteKernelLog("node-1", pipeline.LineKernelDeadlock)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	waitFor(t, "the alert to be suppressed in Alertmanager", 20*time.Second, func() bool {
		s, err := p.AlertmanagerState(ctx, "NodeKernelDeadlock", "node-1")
		return err == nil && s == "suppressed"
	})
	for time.Since(silenced) < silenceFor-time.Second {
		if cordoned(t, p, "node-1") || len(p.Resets("node-1")) > 0 {
			t.Fatalf("node-1 touched while silenced (resets %v)", p.Resets("node-1"))
		}
		if s, _ := p.AlertmanagerState(ctx, "NodeKernelDeadlock", "node-1"); s == "active" {
			t.Fatal("the alert is active while the silence should be")
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("node-1 untouched for %s while silenced", time.Since(at).Round(time.Second))
	fctx, cancel := context.WithTimeout(ctx, 150*time.Second)
	defer cancel()
	tr, err := p.Follow(fctx, pipeline.FollowOptions{Node: "node-1", Alert: "NodeKernelDeadlock", Since: at})
	if err != nil {
		t.Fatalf("after the silence expired: %v", err)
	}
	if tr.Run.Status != runbooks.StatusSucceeded {
		t.Fatalf("run %s %q: %s", tr.Run.Status, tr.Run.Error, outcomes(tr.Run))
	}
	if c := tr.Step("cordon"); c == nil || c.Start.Before(silenced.Add(silenceFor)) {
		t.Fatalf("cordon %+v started before the silence ended (%s)", c, silenced.Add(silenceFor))
	}
}

// TestAlertResolvedBeforeDestructiveStepCancels: the drain is slow (a PDB
// allows no eviction); meanwhile the fault goes away and the alert
// resolves. When the drain can finish, the run stops before the reboot:
// cancelled, its cordon undone, no reset.
func TestAlertResolvedBeforeDestructiveStepCancels(t *testing.T) {
	p := start(t, pipeline.Options{GroupInterval: 5 * time.Second})
	ctx := context.Background()
	if err := p.BlockDrain(ctx, "node-1"); err != nil {
		t.Fatal(err)
	}
	at, err := p.WriteKernelLog("node-1", pipeline.LineKernelDeadlock)
	if err != nil {
		t.Fatal(err)
	}
	var run *runbooks.Run
	waitFor(t, "the run to be draining node-1", 60*time.Second, func() bool {
		runs, err := p.NodeRuns(ctx, "node-1", at)
		if err != nil || len(runs) == 0 {
			return false
		}
		run = runs[0]
		n := len(run.Timeline)
		return n > 0 && run.Timeline[n-1].Step == "drain"
	})
	if !cordoned(t, p, "node-1") {
		t.Fatal("node-1 not cordoned during the drain")
	}
	sent, err := p.WebhookNotifications(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ClearFault(ctx, "node-1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the alert to resolve in Alertmanager", 30*time.Second, func() bool {
		s, err := p.AlertmanagerState(ctx, "NodeKernelDeadlock", "node-1")
		return err == nil && s == ""
	})
	// The resolved notification goes out at the group's next flush.
	waitFor(t, "Alertmanager to send the resolved notification", 30*time.Second, func() bool {
		n, err := p.WebhookNotifications(ctx)
		return err == nil && n > sent
	})
	if c := cordoned(t, p, "node-1"); !c {
		t.Fatal("node-1 uncordoned before the drain could finish")
	}
	if err := p.AllowDrain(ctx, "node-1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the run to end", 90*time.Second, func() bool {
		r, err := p.Run(ctx, run.ID)
		if err == nil {
			run = r
		}
		return err == nil && r.Status.Final()
	})
	if run.Status != runbooks.StatusCancelled {
		t.Fatalf("run %s %q: %s; want cancelled before the reboot", run.Status, run.Error, outcomes(run))
	}
	if cordoned(t, p, "node-1") {
		t.Error("the run's cordon was not undone")
	}
	if r := p.Resets("node-1"); len(r) > 0 {
		t.Errorf("BMC resets %v after the alert resolved", r)
	}
	t.Logf("run cancelled: %s — %s", outcomes(run), run.Error)
}

// TestStormOpensBreaker: faults on 3 of 5 nodes with a 40 % (at least 2
// nodes) breaker: nothing destructive happens, and the breaker shows in
// Prometheus (node-healer's metrics scraped) and in the status API.
func TestStormOpensBreaker(t *testing.T) {
	nodes := []string{"node-1", "node-2", "node-3"}
	p := start(t, pipeline.Options{FaultNodes: nodes,
		Config: map[string]string{"safety": "{breaker: {max_unhealthy_percent: 40, min_unhealthy_nodes: 2}}"}})
	ctx := context.Background()
	for _, n := range nodes {
		if _, err := p.WriteKernelLog(n, pipeline.LineKernelDeadlock); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the breaker to open in GET /api/v1/status", 60*time.Second, func() bool {
		st, err := p.Status(ctx)
		return err == nil && st.Breaker.Open
	})
	waitFor(t, "node_healer_breaker_open == 1 in Prometheus", 30*time.Second, func() bool {
		s, err := p.Prometheus.Query(ctx, "node_healer_breaker_open == 1")
		return err == nil && len(s) > 0
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range p.Nodes {
			if cordoned(t, p, n) || len(p.Resets(n)) > 0 {
				t.Fatalf("%s cordoned or reset (resets %v) while the breaker is open", n, p.Resets(n))
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	st, err := p.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Breaker.Open || st.Breaker.Unhealthy < 3 || len(st.Deferred) != 3 {
		t.Fatalf("status: breaker %+v, deferred %+v; want open, 3 unhealthy, 3 runs deferred", st.Breaker, st.Deferred)
	}
	for _, d := range st.Deferred {
		if d.Hold == nil || d.Hold.Kind != "breaker" {
			t.Errorf("run %s on %s deferred by %+v, want the breaker", d.ID, d.Node, d.Hold)
		}
	}
}

// TestReplicaKilledMidRunOtherFinishes: two replicas; the one running the
// power-cycle is killed (kill -9) right after the BMC applied the reset,
// before it could record it. The other replica claims the run, finishes
// it, and the BMC sees exactly one hard reset.
func TestReplicaKilledMidRunOtherFinishes(t *testing.T) {
	p := start(t, pipeline.Options{Replicas: 2,
		// The reset is applied, then the BMC holds its answer 20 s.
		Faults: map[string]bmcsim.Faults{"node-1": {IgnoreGraceful: true, ResetHang: 20 * time.Second}},
		Config: map[string]string{"workers": "{count: 2, claim_after: 5s}", "locks": "{ttl: 6s}"}})
	ctx := context.Background()
	at, err := p.WriteKernelLog("node-1", pipeline.LineKernelDeadlock)
	if err != nil {
		t.Fatal(err)
	}
	// The BMC powers the node off as it applies the hard reset, while its
	// answer still hangs.
	waitFor(t, "the hard reset to be applied", 90*time.Second, func() bool {
		for _, e := range p.PowerEvents() {
			if e.Node == "node-1" && e.State == "Off" {
				return true
			}
		}
		return false
	})
	runs, err := p.NodeRuns(ctx, "node-1", at)
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs %v %v", runs, err)
	}
	last := runs[0].Timeline[len(runs[0].Timeline)-1]
	var victim *pipeline.Receiver
	for _, r := range p.Receivers {
		if strings.HasPrefix(last.Worker, r.Name) {
			victim = r
		}
	}
	if victim == nil || last.Step != "power-cycle" || last.Outcome != runbooks.OutcomeStarted {
		t.Fatalf("expected a replica inside power-cycle, got %+v", last)
	}
	victim.Kill()
	t.Logf("killed %s (kill -9) inside %s", victim.Name, last.Step)
	fctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	tr, err := p.Follow(fctx, pipeline.FollowOptions{Node: "node-1", Alert: "NodeKernelDeadlock", Since: at})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Run.Status != runbooks.StatusSucceeded {
		t.Fatalf("run %s %q: %s", tr.Run.Status, tr.Run.Error, outcomes(tr.Run))
	}
	hard := 0
	for _, r := range p.Resets("node-1") {
		if r != "GracefulRestart" {
			hard++
		}
	}
	if hard != 1 {
		t.Fatalf("BMC resets %v: want exactly one hard reset", p.Resets("node-1"))
	}
	workers := map[string]bool{}
	for _, e := range tr.Run.Timeline {
		for _, r := range p.Receivers {
			if strings.HasPrefix(e.Worker, r.Name) {
				workers[r.Name] = true
			}
		}
	}
	if len(workers) != 2 {
		t.Errorf("timeline workers %v: both replicas should appear", workers)
	}
	if cordoned(t, p, "node-1") {
		t.Error("node-1 still cordoned")
	}
}
