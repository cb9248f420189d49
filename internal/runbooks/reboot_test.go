package runbooks

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// sim is a fake machine: node status, BMC and drainer for unit tests of
// the step logic (the real adapters are tested against kube-apiserver,
// kwok and the Redfish simulator).
type sim struct {
	mu        sync.Mutex
	ready     string
	readyAt   time.Time
	bootID    string
	power     string
	resets    []string
	softWorks bool
	resetErr  error
	drainErr  error
	drains    int
	conds     map[string]string
	beats     map[string]time.Time // condition heartbeats
}

func (s *sim) Status(_ context.Context, node string) (*NodeStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lease := time.Now()
	if s.ready != "True" {
		lease = time.Now().Add(-time.Hour)
	}
	c := map[string]string{"Ready": s.ready}
	for k, v := range s.conds {
		c[k] = v
	}
	hb := map[string]time.Time{}
	for k, v := range s.beats {
		hb[k] = v
	}
	return &NodeStatus{Name: node, Ready: s.ready, ReadySince: s.readyAt, BootID: s.bootID, LeaseRenewed: lease, Conditions: c, Heartbeats: hb}, nil
}

func (s *sim) Has(context.Context, string) bool { return true }

func (s *sim) PowerState(context.Context, string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.power, nil
}

// Reset reboots the fake machine in 20 ms (a soft reset only if softWorks).
func (s *sim) Reset(_ context.Context, _ string, kind string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resets = append(s.resets, kind)
	typ := map[string]string{PowerSoft: "GracefulRestart", PowerHard: "ForceRestart", PowerOff: "ForceOff", PowerOn: "On"}[kind]
	switch kind {
	case PowerOff:
		s.power, s.ready = StateOff, "Unknown"
	case PowerOn:
		s.power = StateOn
		s.reboot()
	case PowerSoft:
		if s.softWorks {
			s.ready = "Unknown"
			s.reboot()
		}
	case PowerHard:
		s.ready = "Unknown"
		s.reboot()
	}
	return typ, s.resetErr
}

func (s *sim) reboot() {
	go func() {
		time.Sleep(20 * time.Millisecond)
		s.mu.Lock()
		s.ready, s.readyAt, s.bootID = "True", time.Now(), fmt.Sprintf("boot-%d", len(s.resets))
		s.mu.Unlock()
	}()
}

func (s *sim) Drain(_ context.Context, _ string, spec DrainSpec) (DrainReport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !spec.DryRun {
		s.drains++
	}
	if s.drainErr != nil {
		return DrainReport{}, s.drainErr
	}
	return DrainReport{Evicted: 3, Summary: "evicted 3 pods"}, nil
}

func (s *sim) resetKinds() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprint(s.resets)
}

func newSimExec(t *testing.T, s *sim) (*Executor, *fakeNodes) {
	e, _, nodes := newExec(t, Builtin()...)
	e.Deps.Status, e.Deps.Power, e.Deps.Drain = s, s, s
	return e, nodes
}

var fastParams = map[string]string{"reboot_timeout": "200ms", "ready_timeout": "2s", "healthy_for": "30ms"}

func reboot(t *testing.T, e *Executor, dry bool, params map[string]string) *Run {
	t.Helper()
	r := NewRun(Request{RunID: "r1", Runbook: "reboot", Node: "n1", DryRun: dry, Params: params}, e.now())
	if err := e.Execute(context.Background(), r, testLease(1)); err != nil {
		t.Fatal(err)
	}
	return r
}

func outcomes(r *Run) string {
	var s []string
	for _, e := range r.Timeline {
		s = append(s, e.Step+":"+string(e.Outcome))
	}
	return fmt.Sprint(s)
}

func TestRebootSoftWorks(t *testing.T) {
	s := &sim{ready: "True", power: StateOn, bootID: "boot-0", softWorks: true}
	e, nodes := newSimExec(t, s)
	r := reboot(t, e, false, fastParams)
	if r.Status != StatusSucceeded {
		t.Fatalf("%s: %s %s", r.Status, r.Error, outcomes(r))
	}
	want := "[cordon:done drain:done capture:skipped soft-reboot:done wait-reboot:done power-cycle:skipped wait-ready:done verify-health:done uncordon:done]"
	if outcomes(r) != want {
		t.Fatalf("timeline %s\nwant %s", outcomes(r), want)
	}
	if s.resetKinds() != "[soft]" || nodes.nodes["n1"].Unschedulable {
		t.Fatalf("resets %s unschedulable %v", s.resetKinds(), nodes.nodes["n1"].Unschedulable)
	}
}

func TestRebootHungNodeIsPowerCycled(t *testing.T) {
	s := &sim{ready: "True", power: StateOn, bootID: "boot-0", softWorks: false}
	e, _ := newSimExec(t, s)
	r := reboot(t, e, false, fastParams)
	if r.Status != StatusSucceeded || s.resetKinds() != "[soft hard]" {
		t.Fatalf("%s %s resets %s", r.Status, outcomes(r), s.resetKinds())
	}
	if d := r.Timeline[4].Detail; r.Timeline[4].Step != "wait-reboot" || !contains(d, "reboot failed") {
		t.Errorf("wait-reboot detail %q", d)
	}
}

func TestPowerCycleNotResentAfterCrash(t *testing.T) {
	s := &sim{ready: "True", power: StateOn, bootID: "boot-0", resetErr: errors.New("HTTP 500")}
	e, _ := newSimExec(t, s)
	r := reboot(t, e, false, fastParams)
	// The hard reset "failed" but was applied: one hard reset, node back.
	if r.Status != StatusSucceeded || s.resetKinds() != "[soft hard]" {
		t.Fatalf("%s %s resets %s", r.Status, outcomes(r), s.resetKinds())
	}
	// A worker that died after sending (state saved, step not finished)
	// resumes at power-cycle: the decision is found, nothing is resent.
	r.Status, r.Next = StatusRunning, 5
	r.Timeline = r.Timeline[:5]
	e.Store.(*memStore).put(r)
	if err := e.Execute(context.Background(), r, testLease(2)); err != nil {
		t.Fatal(err)
	}
	if s.resetKinds() != "[soft hard]" || r.Timeline[5].Outcome != OutcomeSkipped {
		t.Fatalf("resumed run resent: resets %s, %s", s.resetKinds(), outcomes(r))
	}
}

func TestDrainTimeoutEscalatesWithoutReboot(t *testing.T) {
	s := &sim{ready: "True", power: StateOn, drainErr: fmt.Errorf("%w: pod a/b blocked by PDB a/pdb", ErrDrainTimeout)}
	e, nodes := newSimExec(t, s)
	r := reboot(t, e, false, fastParams)
	if r.Status != StatusEscalated || s.resetKinds() != "[]" {
		t.Fatalf("%s %s resets %s", r.Status, outcomes(r), s.resetKinds())
	}
	n := nodes.nodes["n1"]
	if !n.Unschedulable || n.Labels[LabelNeedsAttention] != "true" || !contains(n.Annotations[AnnotationNeedsAttention], "drain did not finish") {
		t.Fatalf("node after escalation: %+v", n)
	}
	if last := nodes.events[len(nodes.events)-1]; last != "n1 Warning NodeHealerEscalated" {
		t.Errorf("events %v", nodes.events)
	}
	// force_after_timeout goes on to the reboot.
	s2 := &sim{ready: "True", power: StateOn, softWorks: true, drainErr: s.drainErr}
	e2, _ := newSimExec(t, s2)
	p := map[string]string{"force_after_timeout": "true"}
	for k, v := range fastParams {
		p[k] = v
	}
	if r := reboot(t, e2, false, p); r.Status != StatusSucceeded || s2.resetKinds() != "[soft]" {
		t.Fatalf("force_after_timeout: %s %s", r.Status, outcomes(r))
	}
}

func TestRebootDryRunTouchesNothing(t *testing.T) {
	s := &sim{ready: "True", power: StateOn}
	e, nodes := newSimExec(t, s)
	r := reboot(t, e, true, fastParams)
	if r.Status != StatusSucceeded || s.resetKinds() != "[]" || s.drains != 0 || nodes.writes != 0 || len(nodes.events) != 0 {
		t.Fatalf("dry run acted: %s resets %s drains %d writes %d", outcomes(r), s.resetKinds(), s.drains, nodes.writes)
	}
	for _, en := range r.Timeline {
		if en.Outcome != OutcomeDryRun && en.Outcome != OutcomeSkipped {
			t.Errorf("step %s outcome %s in a dry run", en.Step, en.Outcome)
		}
	}
}

func TestUnhealthyAfterRebootEscalates(t *testing.T) {
	s := &sim{ready: "True", power: StateOn, softWorks: true, conds: map[string]string{"KernelDeadlock": "True"}}
	e, nodes := newSimExec(t, s)
	p := map[string]string{"ready_timeout": "100ms"}
	for k, v := range fastParams {
		if k != "ready_timeout" {
			p[k] = v
		}
	}
	r := reboot(t, e, false, p)
	if r.Status != StatusEscalated || !contains(r.Error, "KernelDeadlock=True") || !nodes.nodes["n1"].Unschedulable {
		t.Fatalf("%s %q %s", r.Status, r.Error, outcomes(r))
	}
}

func TestFenceTaintsOnlyAfterPowerOff(t *testing.T) {
	s := &sim{ready: "Unknown", power: StateOn}
	e, nodes := newSimExec(t, s)
	r := NewRun(Request{RunID: "f", Runbook: "fence", Node: "n1", Params: map[string]string{"evacuate_timeout": "20ms", "ready_timeout": "2s", "healthy_for": "30ms"}}, e.now())
	if err := e.Execute(context.Background(), r, testLease(1)); err != nil {
		t.Fatal(err)
	}
	if r.Status != StatusSucceeded || s.resetKinds() != "[off on]" {
		t.Fatalf("%s %s resets %s", r.Status, outcomes(r), s.resetKinds())
	}
	if nodes.taints["n1/"+TaintOutOfService] {
		t.Error("out-of-service taint left on the node")
	}
	// A BMC that never confirms Off: no taint.
	s2 := &stuckPower{sim: &sim{ready: "Unknown", power: StateOn}}
	e2, nodes2 := newSimExec(t, s2.sim)
	e2.Deps.Power = s2
	r2 := NewRun(Request{RunID: "f2", Runbook: "fence", Node: "n1"}, e2.now())
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_ = e2.Execute(ctx, r2, testLease(1))
	if _, tainted := nodes2.taints["n1/"+TaintOutOfService]; tainted {
		t.Fatal("tainted out-of-service without a confirmed power Off")
	}
}

// stuckPower accepts resets but the power never changes.
type stuckPower struct{ *sim }

func (p *stuckPower) Reset(context.Context, string, string) (string, error) { return "ForceOff", nil }

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestVerifyHealthWaitsForDetector: after the reset, a problem condition
// that says False counts only once its detector evaluated it again (a
// heartbeat newer than the reset): NPD resets conditions to False when it
// starts. Never re-evaluated → escalated, naming the condition.
func TestVerifyHealthWaitsForDetector(t *testing.T) {
	before := time.Now().Add(-time.Hour)
	for _, reports := range []bool{true, false} {
		t.Run(fmt.Sprintf("detector reports again: %v", reports), func(t *testing.T) {
			s := &sim{ready: "True", power: StateOn, softWorks: true,
				conds: map[string]string{"KernelDeadlock": "False"}, beats: map[string]time.Time{"KernelDeadlock": before}}
			e, _ := newSimExec(t, s)
			p := map[string]string{"reboot_timeout": "200ms", "ready_timeout": "600ms", "healthy_for": "30ms"}
			var reportedAt time.Time
			if reports {
				go func() {
					time.Sleep(300 * time.Millisecond)
					s.mu.Lock()
					reportedAt = time.Now()
					s.beats["KernelDeadlock"] = reportedAt
					s.mu.Unlock()
				}()
			}
			r := reboot(t, e, false, p)
			var verify *Entry
			for i := range r.Timeline {
				if r.Timeline[i].Step == "verify-health" {
					verify = &r.Timeline[i]
				}
			}
			if !reports {
				if r.Status != StatusEscalated || !contains(r.Error, "condition KernelDeadlock not evaluated since the reset") {
					t.Fatalf("%s %q %s", r.Status, r.Error, outcomes(r))
				}
				return
			}
			if r.Status != StatusSucceeded || verify == nil {
				t.Fatalf("%s %q %s", r.Status, r.Error, outcomes(r))
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if verify.End.Before(reportedAt) {
				t.Fatalf("verify-health passed at %s, before the detector reported again at %s", verify.End, reportedAt)
			}
		})
	}
}

// machine is a fake node and BMC whose soft reboot follows a script of
// what the BMC and the API server show at times after the request (a hard
// reset brings it back in 20 ms). Wrapped in progressBMC it also reports
// BootProgress; on its own it is a BMC without it.
type machine struct {
	mu      sync.Mutex
	ready   string
	readyAt time.Time
	bootID  string
	stopped bool      // the kubelet stopped renewing its Lease…
	lease   time.Time // …at this time
	power   string
	boot    string // BootProgress.LastState; "" the firmware reports none
	bootAt  time.Time
	resets  []string
	script  []scene
}

type scene struct {
	after time.Duration
	do    func(m *machine)
}

func newMachine(boot string, script ...scene) *machine {
	return &machine{ready: "True", bootID: "boot-0", power: StateOn, boot: boot, bootAt: time.Now().Add(-time.Hour), script: script}
}

func (m *machine) Status(_ context.Context, node string) (*NodeStatus, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	lease := time.Now()
	if m.stopped {
		lease = m.lease
	}
	return &NodeStatus{Name: node, Ready: m.ready, ReadySince: m.readyAt, BootID: m.bootID, LeaseRenewed: lease,
		Conditions: map[string]string{"Ready": m.ready}, Heartbeats: map[string]time.Time{}}, nil
}

func (m *machine) Has(context.Context, string) bool { return true }

func (m *machine) PowerState(context.Context, string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.power, nil
}

func (m *machine) Reset(_ context.Context, _ string, kind string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.resets = append(m.resets, kind)
	switch kind {
	case PowerSoft:
		go m.play(time.Now())
		return "GracefulRestart", nil
	case PowerHard:
		m.power, m.ready, m.stopped, m.lease = StateOff, "Unknown", true, time.Now()
		m.setBoot("None")
		time.AfterFunc(20*time.Millisecond, func() { m.mu.Lock(); defer m.mu.Unlock(); m.up() })
		return "ForceRestart", nil
	}
	return "", fmt.Errorf("machine: reset %s not scripted", kind)
}

// play runs the script from one goroutine, in order of time: the scenes
// due at the same time are applied under one hold of the lock, so a
// reader never sees half of an instant (one timer per scene let a poll see
// BootProgress None while the power still read PoweringOff).
func (m *machine) play(start time.Time) {
	script := slices.Clone(m.script)
	slices.SortStableFunc(script, func(a, b scene) int { return cmp.Compare(a.after, b.after) })
	for i := 0; i < len(script); {
		time.Sleep(time.Until(start.Add(script[i].after)))
		m.mu.Lock()
		at := script[i].after
		for ; i < len(script) && script[i].after == at; i++ {
			script[i].do(m)
		}
		m.mu.Unlock()
	}
}

// up: the OS runs again, with a new boot ID. Call with m.mu held.
func (m *machine) up() {
	m.power, m.ready, m.readyAt, m.stopped = StateOn, "True", time.Now(), false
	m.bootID = fmt.Sprintf("boot-%d", len(m.resets))
	m.setBoot("OSRunning")
}

func (m *machine) setBoot(s string) {
	if m.boot != "" {
		m.boot, m.bootAt = s, time.Now()
	}
}

func (m *machine) Drain(context.Context, string, DrainSpec) (DrainReport, error) {
	return DrainReport{Summary: "nothing to drain"}, nil
}

func (m *machine) resetKinds() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return fmt.Sprint(m.resets)
}

// progressBMC is the machine's BMC with BootProgress (a BootProgressReader).
type progressBMC struct{ *machine }

var _ BootProgressReader = progressBMC{}

func (p progressBMC) BootProgress(_ context.Context, _ string) (string, time.Time, string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.boot == "" {
		return "", time.Time{}, p.power, nil
	}
	return p.boot, p.bootAt, p.power, nil
}

// Scenes.
func powerAt(d time.Duration, state string) scene {
	return scene{d, func(m *machine) { m.power = state }}
}
func bootAt(d time.Duration, state string) scene {
	return scene{d, func(m *machine) { m.setBoot(state) }}
}
func leaseStopsAt(d time.Duration) scene {
	return scene{d, func(m *machine) { m.stopped, m.lease = true, time.Now() }}
}
func notReadyAt(d time.Duration) scene {
	return scene{d, func(m *machine) { m.ready = "Unknown" }}
}
func upAt(d time.Duration) scene { return scene{d, func(m *machine) { m.up() }} }

// progressParams: a short reboot_progress_timeout, a reboot_timeout far
// beyond the test's patience.
func progressParams(progress string) map[string]string {
	return map[string]string{"reboot_progress_timeout": progress, "reboot_timeout": "1m", "ready_timeout": "5s",
		"healthy_for": "20ms", "lease_max_age": "100ms"}
}

func runMachine(t *testing.T, m *machine, withProgress bool, params map[string]string) (*Run, Entry) {
	t.Helper()
	e, _, _ := newExec(t, Builtin()...)
	e.Deps.Status, e.Deps.Drain, e.Deps.Power, e.Deps.Poll = m, m, m, 5*time.Millisecond
	if withProgress {
		e.Deps.Power = progressBMC{m}
	}
	r := reboot(t, e, false, params)
	for _, en := range r.Timeline {
		if en.Step == "wait-reboot" {
			return r, en
		}
	}
	t.Fatalf("no wait-reboot step: %s", outcomes(r))
	return r, Entry{}
}

// A hung node whose BMC shows BootProgress stuck at OSRunning (an old
// LastStateTime) is power-cycled once reboot_progress_timeout passes, not
// after reboot_timeout (1m here).
func TestWaitRebootHungPowerCycledAfterProgressTimeout(t *testing.T) {
	m := newMachine("OSRunning")
	r, w := runMachine(t, m, true, progressParams("300ms"))
	if r.Status != StatusSucceeded || m.resetKinds() != "[soft hard]" {
		t.Fatalf("%s %q %s resets %s", r.Status, r.Error, outcomes(r), m.resetKinds())
	}
	if d := w.End.Sub(w.Start); d < 250*time.Millisecond || d > 10*time.Second {
		t.Fatalf("wait-reboot took %s; want reboot_progress_timeout (300ms), not reboot_timeout", d)
	}
	for _, want := range []string{"reboot failed", "no sign of progress within 300ms", "BootProgress OSRunning since", "BMC power On", "Ready=True"} {
		if !contains(w.Detail, want) {
			t.Errorf("wait-reboot detail lacks %q: %s", want, w.Detail)
		}
	}
}

// A slow reboot that shows progress is never power-cycled, however long
// it takes beyond reboot_progress_timeout.
func TestWaitRebootProgressingNeverPowerCycled(t *testing.T) {
	for _, c := range []struct {
		name         string
		withProgress bool
		boot         string
		script       []scene
		want         []string // in the wait-reboot detail
	}{{
		// The OS takes 600 ms to shut down (PoweringOff), then a 900 ms
		// boot walks through the firmware and OS states; the API server
		// still says Ready until the kubelet is back.
		name: "slow shutdown then BootProgress", withProgress: true, boot: "OSRunning",
		script: []scene{powerAt(0, StatePoweringOff), powerAt(600*time.Millisecond, StateOff), bootAt(600*time.Millisecond, "None"),
			powerAt(650*time.Millisecond, StatePoweringOn), bootAt(650*time.Millisecond, "PrimaryProcessorInitializationStarted"),
			bootAt(1100*time.Millisecond, "OSBootStarted"), upAt(1500 * time.Millisecond)},
		want: []string{"node went down", "BMC reports PoweringOff", "BMC reports power Off"},
	}, {
		// A warm reset: PowerState stays On, only BootProgress moves
		// (after 100 ms); the node is back with a new boot ID at 1.2 s.
		name: "BootProgress only", withProgress: true, boot: "OSRunning",
		script: []scene{bootAt(100*time.Millisecond, "PrimaryProcessorInitializationStarted"),
			bootAt(600*time.Millisecond, "OSBootStarted"), upAt(1200 * time.Millisecond)},
		want: []string{"node went down", "BootProgress OSRunning → PrimaryProcessorInitializationStarted"},
	}, {
		// A BMC without BootProgress (nor PowerState changes): the kubelet
		// Lease stops at 100 ms, Ready flips at 700 ms.
		name: "no BootProgress: the Lease", withProgress: false,
		script: []scene{leaseStopsAt(100 * time.Millisecond), notReadyAt(700 * time.Millisecond), upAt(900 * time.Millisecond)},
		want:   []string{"node went down", "kubelet Lease stopped", "node went NotReady"},
	}, {
		// Firmware that reports no BootProgress through a BootProgress
		// reader: the same.
		name: "BootProgress empty: the Lease", withProgress: true, boot: "",
		script: []scene{leaseStopsAt(100 * time.Millisecond), notReadyAt(700 * time.Millisecond), upAt(900 * time.Millisecond)},
		want:   []string{"node went down", "BMC reports no BootProgress", "kubelet Lease stopped", "node went NotReady"},
	}} {
		t.Run(c.name, func(t *testing.T) {
			m := newMachine(c.boot, c.script...)
			r, w := runMachine(t, m, c.withProgress, progressParams("300ms"))
			if r.Status != StatusSucceeded || m.resetKinds() != "[soft]" {
				t.Fatalf("%s %q %s resets %s; wait-reboot: %s", r.Status, r.Error, outcomes(r), m.resetKinds(), w.Detail)
			}
			for _, want := range c.want {
				if !contains(w.Detail, want) {
					t.Errorf("wait-reboot detail lacks %q: %s", want, w.Detail)
				}
			}
		})
	}
}

// Without BootProgress the node's signals decide: nothing moves → the
// power-cycle after reboot_progress_timeout; a node that already stopped
// renewing its Lease before the request shows no progress by that.
func TestWaitRebootWithoutBootProgressHung(t *testing.T) {
	for _, c := range []struct {
		name         string
		withProgress bool
		staleLease   bool
		want         string
	}{
		{"plain BMC", false, false, "BMC power On"},
		{"firmware without BootProgress", true, false, "no BootProgress"},
		{"Lease already stale", false, true, "Lease already not renewed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := newMachine("")
			if c.staleLease {
				m.stopped, m.lease = true, time.Now().Add(-time.Minute)
			}
			r, w := runMachine(t, m, c.withProgress, progressParams("300ms"))
			if m.resetKinds() != "[soft hard]" || !contains(w.Detail, "no sign of progress within 300ms") || !contains(w.Detail, c.want) {
				t.Fatalf("%s %s resets %s; wait-reboot: %s", r.Status, outcomes(r), m.resetKinds(), w.Detail)
			}
			if d := w.End.Sub(w.Start); d > 10*time.Second {
				t.Fatalf("wait-reboot took %s", d)
			}
		})
	}
}

// Progress that never ends in a restart (a shutdown hung in PoweringOff)
// waits the whole reboot_timeout, then power-cycles: the existing path.
func TestWaitRebootProgressThenStuckWaitsRebootTimeout(t *testing.T) {
	m := newMachine("OSRunning", powerAt(50*time.Millisecond, StatePoweringOff))
	p := progressParams("100ms")
	p["reboot_timeout"] = "700ms"
	r, w := runMachine(t, m, true, p)
	if m.resetKinds() != "[soft hard]" {
		t.Fatalf("%s %s resets %s", r.Status, outcomes(r), m.resetKinds())
	}
	if d := w.End.Sub(w.Start); d < 650*time.Millisecond {
		t.Fatalf("wait-reboot gave up after %s although the node showed progress; want reboot_timeout (700ms)", d)
	}
	if !contains(w.Detail, "no sign of a reboot within 700ms") || !contains(w.Detail, "progress seen: BMC reports PoweringOff") {
		t.Fatalf("wait-reboot detail: %s", w.Detail)
	}
}
