package runbooks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// CaptureOutput is a finished capture command: how its pod ended and the
// tail of what it printed.
type CaptureOutput struct {
	ExecResult
	Output    string
	Truncated bool // Output is the tail of a longer output
}

// Capturer is a NodeExec that can return a command's output. The capture
// step uses it when Deps.Exec has it.
type Capturer interface {
	// Capture runs a shell command line on the node's host and waits for
	// it (timeout). The pod is named after runID and action, like Exec's.
	Capture(ctx context.Context, node, runID, action, commandLine string, timeout time.Duration) (CaptureOutput, error)
}

// Bounds of what a capture keeps, so a run record stays small in Redis.
const (
	maxCaptureBytes    = 256 << 10 // capture_max_bytes may not be set higher
	maxCaptureCommands = 10
	maxCaptureLine     = 1000 // bytes of one command line
	maxCaptureError    = 512  // bytes of an error kept per command
)

// NotCaptured starts an Evidence error that says no command ran.
const NotCaptured = "not captured: "

func validateCaptureCommands(v string) error {
	cmds := captureCommands(v)
	switch {
	case len(cmds) == 0:
		return errors.New("no command (set capture: false to turn the capture off)")
	case len(cmds) > maxCaptureCommands:
		return fmt.Errorf("%d commands, at most %d", len(cmds), maxCaptureCommands)
	}
	for _, c := range cmds {
		if len(c) > maxCaptureLine {
			return fmt.Errorf("a command line of %d bytes, at most %d", len(c), maxCaptureLine)
		}
	}
	return nil
}

// captureCommands splits the capture_commands parameter: one command line
// per non-blank line.
func captureCommands(v string) []string {
	var out []string
	for _, l := range strings.Split(v, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// Capture keeps evidence before a reset: it runs capture_commands on the
// node through node-exec pods and stores the tail of each output with
// the run (Run.Evidence, capture_max_bytes in all). It never stops the
// run: a node that does not answer is recorded as not captured, and a
// command that fails or outlasts capture_timeout is recorded with its
// error; the run goes on to the reset either way.
func Capture(ctx context.Context, x *Exec) (Outcome, string, error) {
	if !x.flag("capture") {
		return OutcomeSkipped, "capture turned off (capture: false)", nil
	}
	cmds := captureCommands(x.param("capture_commands"))
	if x.DryRun {
		return OutcomeDryRun, fmt.Sprintf("would capture %d command outputs from the node (%s) before the reset", len(cmds), strings.Join(cmds, "; ")), nil
	}
	if len(x.Run.Evidence) > 0 {
		return OutcomeSkipped, "evidence already captured at " + x.Run.Evidence[0].At.UTC().Format(time.RFC3339), nil
	}
	notCaptured := func(why string) (Outcome, string, error) {
		x.Run.Evidence = []Evidence{{Error: NotCaptured + why, At: x.Now()}}
		return OutcomeSkipped, NotCaptured + why, nil
	}
	c, ok := x.Exec.(Capturer)
	if !ok || x.Status == nil {
		return notCaptured("no node-exec runner that returns output is configured")
	}
	st, err := x.Status.Status(ctx, x.Run.Node)
	if err != nil {
		return notCaptured("cannot read the node's status: " + clip(err.Error(), maxCaptureError))
	}
	if !st.Responsive(x.Now(), x.duration("lease_max_age")) {
		return notCaptured(fmt.Sprintf("node not responding (Ready=%s, Lease renewed %s)", orNone(st.Ready), age(x, st)))
	}
	budget := x.integer("capture_max_bytes")
	deadline := x.Now().Add(x.duration("capture_timeout"))
	var evidence []Evidence
	kept, failed := 0, 0
	for i, cmd := range cmds {
		ev := Evidence{Command: cmd, At: x.Now()}
		left := deadline.Sub(x.Now())
		if left <= 0 {
			ev.Error = "not run: capture_timeout (" + x.param("capture_timeout") + ") reached"
			evidence, failed = append(evidence, ev), failed+1
			continue
		}
		if err := x.CheckLease(); err != nil {
			return "", "", err
		}
		action := fmt.Sprintf("capture-%d", i+1)
		out, err := c.Capture(ctx, x.Run.Node, x.Run.ID, action, cmd, left)
		_ = x.Exec.Cleanup(context.WithoutCancel(ctx), x.Run.Node, x.Run.ID, action)
		if ctx.Err() != nil {
			// Shutting down or the lease lapsed: the run is resumed and
			// captures again.
			return "", "", ctx.Err()
		}
		ev.Output, ev.Truncated = out.Output, out.Truncated
		if len(ev.Output) > budget {
			ev.Output, ev.Truncated = tail(ev.Output, budget), true
		}
		budget -= len(ev.Output)
		kept += len(ev.Output)
		switch {
		case err != nil:
			ev.Error = clip(err.Error(), maxCaptureError)
		case out.Phase != "Succeeded":
			ev.ExitCode = out.ExitCode
			ev.Error = fmt.Sprintf("pod %s, exit code %d", orNone(out.Phase), out.ExitCode)
		}
		if ev.Error != "" {
			failed++
		}
		evidence = append(evidence, ev)
	}
	x.Run.Evidence = evidence
	detail := fmt.Sprintf("captured %d command outputs from the node (%d bytes kept", len(cmds)-failed, kept)
	if budget <= 0 {
		detail += ", capture_max_bytes reached"
	}
	detail += ")"
	if failed > 0 {
		detail += fmt.Sprintf("; %d failed (recorded; the run goes on)", failed)
	}
	x.Audit(ctx, "capture", detail)
	return OutcomeDone, detail, nil
}

// tail returns the last n bytes of s, starting at a whole UTF-8 character.
func tail(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	for len(s) > 0 && !utf8.RuneStart(s[0]) {
		s = s[1:]
	}
	return s
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
