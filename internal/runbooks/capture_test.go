package runbooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeCapture is a node-exec runner that returns output: out(cmd) for
// each command line, or hangs until its timeout for the commands in hang.
type fakeCapture struct {
	mu       sync.Mutex
	out      func(cmd string) string
	hang     map[string]bool
	fail     map[string]int // exit code
	calls    []string
	cleanups int
	events   func() []string // the node's events when a capture ran
	seen     []string
}

func (f *fakeCapture) Exec(context.Context, string, string, string, []string, bool, time.Duration) (ExecResult, error) {
	return ExecResult{}, errors.New("fakeCapture: Exec not expected")
}

func (f *fakeCapture) Cleanup(context.Context, string, string, string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups++
	return nil
}

func (f *fakeCapture) Capture(ctx context.Context, node, runID, action, cmd string, timeout time.Duration) (CaptureOutput, error) {
	f.mu.Lock()
	f.calls = append(f.calls, action+" "+cmd)
	if f.events != nil {
		f.seen = f.events()
	}
	hang, code := f.hang[cmd], f.fail[cmd]
	f.mu.Unlock()
	pod := "nh-" + action + "-" + runID
	if hang {
		select {
		case <-ctx.Done():
			return CaptureOutput{}, ctx.Err()
		case <-time.After(timeout):
			return CaptureOutput{ExecResult: ExecResult{Pod: pod, Phase: "Pending"}}, fmt.Errorf("node-exec pod %s did not finish within %s", pod, timeout)
		}
	}
	phase := "Succeeded"
	if code != 0 {
		phase = "Failed"
	}
	out := ""
	if f.out != nil {
		out = f.out(cmd)
	}
	return CaptureOutput{ExecResult: ExecResult{Pod: pod, Phase: phase, ExitCode: code}, Output: out}, nil
}

func (f *fakeCapture) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func withParams(extra map[string]string) map[string]string {
	p := map[string]string{}
	for k, v := range fastParams {
		p[k] = v
	}
	for k, v := range extra {
		p[k] = v
	}
	return p
}

func TestCaptureBeforeSoftReboot(t *testing.T) {
	s := &sim{ready: "True", power: StateOn, bootID: "boot-0", softWorks: true}
	e, nodes := newSimExec(t, s)
	fc := &fakeCapture{out: func(cmd string) string { return "output of " + cmd }}
	fc.events = func() []string {
		nodes.mu.Lock()
		defer nodes.mu.Unlock()
		return append([]string(nil), nodes.events...)
	}
	e.Deps.Exec = fc
	r := NewRun(Request{RunID: "r1", Runbook: "reboot", Node: "n1", Params: fastParams,
		Labels: map[string]string{"alertname": "NodeKernelDeadlock", "reason": "KernelDeadlock"}}, e.now())
	if err := e.Execute(context.Background(), r, testLease(1)); err != nil {
		t.Fatal(err)
	}
	want := "[cordon:done drain:done capture:done soft-reboot:done wait-reboot:done power-cycle:skipped wait-ready:done verify-health:done uncordon:done]"
	if r.Status != StatusSucceeded || outcomes(r) != want {
		t.Fatalf("%s %s\nwant %s", r.Status, outcomes(r), want)
	}
	cmds := captureCommands(paramDefault("capture_commands"))
	if len(cmds) != 3 || len(r.Evidence) != 3 {
		t.Fatalf("default commands %q, evidence %+v", cmds, r.Evidence)
	}
	for i, ev := range r.Evidence {
		if ev.Command != cmds[i] || ev.Output != "output of "+cmds[i] || ev.Truncated || ev.Error != "" || ev.At.IsZero() {
			t.Errorf("evidence %d: %+v", i, ev)
		}
	}
	if fc.callCount() != 3 || fc.cleanups != 3 || !strings.HasPrefix(fc.calls[0], "capture-1 dmesg -T") {
		t.Errorf("captures %q, cleanups %d", fc.calls, fc.cleanups)
	}
	// Captured before anything was reset.
	for _, ev := range fc.seen {
		if strings.Contains(ev, "Reboot") {
			t.Errorf("capture ran after %s", ev)
		}
	}
	// The stored record carries the evidence.
	saved, err := e.Store.Load(context.Background(), "r1")
	if err != nil || len(saved.Evidence) != 3 || saved.Evidence[2].Output != "output of "+cmds[2] {
		t.Fatalf("stored evidence %+v (%v)", saved, err)
	}
	// The reason is on the node, with a Normal Event before the reboot.
	var m LastRemediation
	if err := json.Unmarshal([]byte(nodes.nodes["n1"].Annotations[AnnotationLastRemediation]), &m); err != nil {
		t.Fatalf("annotation %q: %v", nodes.nodes["n1"].Annotations[AnnotationLastRemediation], err)
	}
	if m.Run != "r1" || m.Runbook != "reboot" || m.Alert != "NodeKernelDeadlock" || !strings.Contains(m.Reason, "soft reboot via bmc") ||
		!strings.Contains(m.Reason, "KernelDeadlock") {
		t.Errorf("last remediation %+v", m)
	}
	if at, err := time.Parse(time.RFC3339, m.At); err != nil || time.Since(at) > time.Minute {
		t.Errorf("at %q: %v", m.At, err)
	}
	evs := strings.Join(nodes.events, ",")
	if i, j := strings.Index(evs, "n1 Normal NodeHealerRebooting"), strings.Index(evs, "NodeHealerSoftReboot"); i < 0 || j < i {
		t.Errorf("events %v: want NodeHealerRebooting before NodeHealerSoftReboot", nodes.events)
	}
}

func TestCaptureSizeCap(t *testing.T) {
	s := &sim{ready: "True", power: StateOn, bootID: "boot-0", softWorks: true}
	e, _ := newSimExec(t, s)
	// 80 bytes each, ending in a 2-byte character; 100 bytes kept in all.
	fc := &fakeCapture{out: func(cmd string) string { return strings.Repeat("x", 77) + cmd[:1] + "é" }}
	e.Deps.Exec = fc
	r := reboot(t, e, false, withParams(map[string]string{"capture_max_bytes": "100", "capture_commands": "a\nb\nc"}))
	if r.Status != StatusSucceeded || len(r.Evidence) != 3 {
		t.Fatalf("%s %s %+v", r.Status, outcomes(r), r.Evidence)
	}
	ev := r.Evidence
	if len(ev[0].Output) != 80 || ev[0].Truncated {
		t.Errorf("first output %d bytes truncated %v", len(ev[0].Output), ev[0].Truncated)
	}
	if ev[1].Output != strings.Repeat("x", 17)+"bé" || !ev[1].Truncated {
		t.Errorf("second output %q truncated %v: want the last 20 bytes", ev[1].Output, ev[1].Truncated)
	}
	if ev[2].Output != "" || !ev[2].Truncated {
		t.Errorf("third output %q truncated %v: nothing left of the budget", ev[2].Output, ev[2].Truncated)
	}
	total := 0
	for _, x := range ev {
		total += len(x.Output)
	}
	if total > 100 || !contains(r.Timeline[2].Detail, "capture_max_bytes reached") {
		t.Errorf("kept %d bytes; detail %q", total, r.Timeline[2].Detail)
	}
	// The cut falls inside "é": the tail starts at a whole character.
	if got := tail("abé", 1); got != "" {
		t.Errorf("tail cut a character: %q", got)
	}
}

func TestCaptureUnresponsiveNodeGoesOnToPowerCycle(t *testing.T) {
	s := &sim{ready: "Unknown", power: StateOn, bootID: "boot-0"}
	e, nodes := newSimExec(t, s)
	fc := &fakeCapture{}
	e.Deps.Exec = fc
	r := NewRun(Request{RunID: "p1", Runbook: "power-cycle", Node: "n1", Params: fastParams,
		Labels: map[string]string{"alertname": "NodeNotReady"}}, e.now())
	if err := e.Execute(context.Background(), r, testLease(1)); err != nil {
		t.Fatal(err)
	}
	if r.Status != StatusSucceeded || s.resetKinds() != "[hard]" || r.Timeline[2].Step != "capture" || r.Timeline[2].Outcome != OutcomeSkipped {
		t.Fatalf("%s %s resets %s", r.Status, outcomes(r), s.resetKinds())
	}
	if fc.callCount() != 0 {
		t.Errorf("node-exec pods started on an unresponsive node: %q", fc.calls)
	}
	if len(r.Evidence) != 1 || !strings.HasPrefix(r.Evidence[0].Error, "not captured: node not responding (Ready=Unknown") {
		t.Errorf("evidence %+v", r.Evidence)
	}
	var m LastRemediation
	_ = json.Unmarshal([]byte(nodes.nodes["n1"].Annotations[AnnotationLastRemediation]), &m)
	if m.Run != "p1" || m.Alert != "NodeNotReady" || !strings.Contains(m.Reason, "power-cycle") {
		t.Errorf("last remediation %+v", m)
	}
}

func TestCaptureFailureOrHangNeverBlocksTheReboot(t *testing.T) {
	s := &sim{ready: "True", power: StateOn, bootID: "boot-0", softWorks: true}
	e, _ := newSimExec(t, s)
	fc := &fakeCapture{out: func(cmd string) string { return "out " + cmd }, hang: map[string]bool{"b": true}, fail: map[string]int{"a": 3}}
	e.Deps.Exec = fc
	start := time.Now()
	r := reboot(t, e, false, withParams(map[string]string{"capture_timeout": "150ms", "capture_commands": "a\nb\nc"}))
	if r.Status != StatusSucceeded || s.resetKinds() != "[soft]" || r.Timeline[2].Outcome != OutcomeDone {
		t.Fatalf("%s %s resets %s", r.Status, outcomes(r), s.resetKinds())
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("the capture held the run for %s", time.Since(start))
	}
	ev := r.Evidence
	if len(ev) != 3 {
		t.Fatalf("evidence %+v", ev)
	}
	if ev[0].ExitCode != 3 || ev[0].Output != "out a" || !strings.Contains(ev[0].Error, "exit code 3") {
		t.Errorf("failed command: %+v", ev[0])
	}
	if !strings.Contains(ev[1].Error, "did not finish") {
		t.Errorf("hung command: %+v", ev[1])
	}
	if !strings.Contains(ev[2].Error, "capture_timeout") || fc.callCount() != 2 {
		t.Errorf("command after the timeout: %+v (captures %q)", ev[2], fc.calls)
	}
	if !contains(r.Timeline[2].Detail, "3 failed") {
		t.Errorf("detail %q", r.Timeline[2].Detail)
	}
}

func TestCaptureOffDryRunAndNoRunner(t *testing.T) {
	s := &sim{ready: "True", power: StateOn, bootID: "boot-0", softWorks: true}
	e, _ := newSimExec(t, s)
	fc := &fakeCapture{}
	e.Deps.Exec = fc
	r := reboot(t, e, false, withParams(map[string]string{"capture": "false"}))
	if r.Status != StatusSucceeded || r.Timeline[2].Outcome != OutcomeSkipped || len(r.Evidence) != 0 || fc.callCount() != 0 {
		t.Fatalf("capture: false: %s %s %+v", r.Status, outcomes(r), r.Evidence)
	}
	e2, nodes2 := newSimExec(t, &sim{ready: "True", power: StateOn})
	e2.Deps.Exec = fc
	r = reboot(t, e2, true, fastParams)
	if r.Timeline[2].Outcome != OutcomeDryRun || fc.callCount() != 0 || len(r.Evidence) != 0 ||
		nodes2.nodes["n1"].Annotations[AnnotationLastRemediation] != "" {
		t.Fatalf("dry run: %s %+v", outcomes(r), r.Evidence)
	}
	// No runner that returns output (the sim has no Exec at all).
	e3, _ := newSimExec(t, &sim{ready: "True", power: StateOn, softWorks: true})
	r = reboot(t, e3, false, fastParams)
	if r.Status != StatusSucceeded || len(r.Evidence) != 1 || !strings.HasPrefix(r.Evidence[0].Error, NotCaptured) {
		t.Fatalf("no runner: %s %+v", outcomes(r), r.Evidence)
	}
}

// A newer holder's fence on the node stops the step before any reset.
func TestRemediationMarkIsFenced(t *testing.T) {
	s := &sim{ready: "True", power: StateOn, bootID: "boot-0", softWorks: true}
	e, nodes := newSimExec(t, s)
	e.Deps.Writer = fencedWriter{nodes}
	r := NewRun(Request{RunID: "r1", Runbook: "reboot", Node: "n1", Params: fastParams}, e.now())
	if err := e.Execute(context.Background(), r, testLease(1)); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("err %v, want the run stopped (lease lost)", err)
	}
	if s.resetKinds() != "[]" {
		t.Fatalf("reset sent after a stale-fence write: %s", s.resetKinds())
	}
}

type fencedWriter struct{ *fakeNodes }

func (w fencedWriter) Annotate(ctx context.Context, node string, ann, labels map[string]*string) error {
	if _, ok := ann[AnnotationLastRemediation]; ok {
		return &StaleFenceError{Node: node, Mine: 1, Theirs: 2}
	}
	return w.fakeNodes.Annotate(ctx, node, ann, labels)
}

func TestValidateCaptureParams(t *testing.T) {
	for _, tc := range []struct {
		params map[string]string
		err    string
	}{
		{map[string]string{"capture": "false", "capture_max_bytes": "0", "capture_timeout": "30s", "capture_commands": "uptime\n\ndf -h\n"}, ""},
		{map[string]string{"capture": "maybe"}, "not true or false"},
		{map[string]string{"capture_max_bytes": "1MiB"}, "not a number of bytes"},
		{map[string]string{"capture_max_bytes": "262145"}, "not a number of bytes"},
		{map[string]string{"capture_commands": " \n "}, "no command"},
		{map[string]string{"capture_commands": strings.Repeat("uptime\n", 11)}, "11 commands"},
		{map[string]string{"capture_commands": strings.Repeat("x", 1001)}, "1001 bytes"},
		{map[string]string{"capture_timeout": "0s"}, "not a positive duration"},
	} {
		err := ValidateParams(tc.params)
		if (tc.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%v: %v, want %q", tc.params, err, tc.err)
		}
	}
}
