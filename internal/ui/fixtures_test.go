package ui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/safety"
)

// t0 is the fixtures' clock.
var t0 = time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)

// evil is a label value, detail and name part a page must escape.
const evil = `<script>alert("x")</script>`

// fakeRuns is a run store in memory, newest first.
type fakeRuns struct {
	runs []*runbooks.Run
	err  error
}

func (f *fakeRuns) Load(_ context.Context, id string) (*runbooks.Run, error) {
	if f.err != nil {
		return nil, f.err
	}
	for _, r := range f.runs {
		if r.ID == id {
			return r, nil
		}
	}
	return nil, fmt.Errorf("%w: %s", runbooks.ErrRunNotFound, id)
}

func (f *fakeRuns) List(_ context.Context, limit int) ([]*runbooks.Run, error) {
	if f.err != nil {
		return nil, f.err
	}
	if limit < len(f.runs) {
		return f.runs[:limit], nil
	}
	return f.runs, nil
}

// statusOf is the safety state the way safety.Gate.Status builds its run
// lists, over the fixtures.
func statusOf(paused *safety.PauseInfo) func(context.Context, safety.RunLister) (*safety.Status, error) {
	return func(ctx context.Context, rl safety.RunLister) (*safety.Status, error) {
		st := &safety.Status{Paused: paused, ActiveRuns: []string{}, Held: []safety.RunSummary{}, Deferred: []safety.RunSummary{},
			Escalated: []safety.RunSummary{},
			Breaker:   safety.BreakerState{Unhealthy: 1, Total: 5, Threshold: "20% (min 3 nodes)", Evaluated: t0},
			Reboots:   safety.Budget{Limit: "1 per 10m0s (burst 1)", Remaining: 0, NextAllowed: t0.Add(7 * time.Minute)},
			Limits:    safety.StatusLimits{MaxRuns: 1, MaxControlPlaneRuns: 1, NodeRuns: "3 per 24h0m0s", Silences: true}}
		runs, err := rl.List(ctx, 1000)
		if err != nil {
			return nil, err
		}
		for _, r := range runs {
			s := safety.RunSummary{ID: r.ID, Node: r.Node, Runbook: r.Runbook, Status: string(r.Status), Hold: r.Hold}
			switch r.Status {
			case runbooks.StatusHeld:
				st.Held = append(st.Held, s)
			case runbooks.StatusDeferred:
				st.Deferred = append(st.Deferred, s)
			case runbooks.StatusEscalated:
				s.Hold = &runbooks.Hold{Kind: "escalated", Reason: r.Error}
				st.Escalated = append(st.Escalated, s)
			}
		}
		return st, nil
	}
}

// reboot steps, as the reboot runbook names them.
var rebootSteps = []string{"cordon", "drain", "capture", "soft-reboot", "wait-reboot", "power-cycle", "wait-ready", "verify-health", "uncordon"}

// fixtureRun is a reboot run on node with status st, its timeline as far
// as that status gets.
func fixtureRun(id, node string, st runbooks.Status, created time.Time) *runbooks.Run {
	r := &runbooks.Run{ID: id, Runbook: "reboot", Route: "deadlock", Node: node, Fingerprint: "fp-" + id,
		AlertStart: created.Add(-90 * time.Second), Status: st, Created: created, Updated: created.Add(3 * time.Minute), Attempts: 1,
		Labels: map[string]string{"alertname": "NodeKernelDeadlock", "node": node, "severity": "critical"}}
	steps := 0
	switch st {
	case runbooks.StatusSucceeded:
		steps = len(rebootSteps)
	case runbooks.StatusRunning:
		steps = 2
	case runbooks.StatusHeld:
		steps = 3
		r.Hold = &runbooks.Hold{Kind: "paused", Reason: "paused by alice: change freeze", Since: created.Add(time.Minute), Step: "soft-reboot"}
	case runbooks.StatusDeferred:
		r.Hold = &runbooks.Hold{Kind: "breaker", Reason: "4 of 10 nodes unhealthy", Since: created, RetryAt: created.Add(time.Minute)}
	case runbooks.StatusFailed:
		steps = 4
		r.Error = "step soft-reboot: BMC answered 500"
	case runbooks.StatusEscalated:
		steps = 2
		r.Error = "step drain: drain did not finish within 10m (PodDisruptionBudget)"
	case runbooks.StatusCancelled:
		steps = 1
	}
	at := created
	for i := range steps {
		e := runbooks.Entry{Step: rebootSteps[i], Start: at, End: at.Add(10 * time.Second), Outcome: runbooks.OutcomeDone,
			Worker: "replica-a", Fence: 7, Detail: "did " + rebootSteps[i]}
		if rebootSteps[i] == "power-cycle" {
			e.Outcome, e.Detail = runbooks.OutcomeSkipped, "the node rebooted on its own"
		}
		at = at.Add(10 * time.Second)
		r.Timeline = append(r.Timeline, e)
	}
	switch st {
	case runbooks.StatusRunning:
		r.Timeline[1].Outcome, r.Timeline[1].End = runbooks.OutcomeStarted, time.Time{}
	case runbooks.StatusFailed:
		r.Timeline[3].Outcome, r.Timeline[3].Detail = runbooks.OutcomeFailed, "BMC answered 500"
	case runbooks.StatusEscalated:
		r.Timeline[1].Outcome, r.Timeline[1].Detail = runbooks.OutcomeEscalated, "drain did not finish within 10m"
	}
	r.Next = len(r.Timeline)
	return r
}

var allStatuses = []runbooks.Status{runbooks.StatusPending, runbooks.StatusRunning, runbooks.StatusHeld, runbooks.StatusDeferred,
	runbooks.StatusSucceeded, runbooks.StatusFailed, runbooks.StatusEscalated, runbooks.StatusCancelled}

// oneOfEach is one run of each status, each on its own node, newest first.
func oneOfEach() []*runbooks.Run {
	var out []*runbooks.Run
	for i, st := range allStatuses {
		out = append([]*runbooks.Run{fixtureRun("run-"+string(st), "node-"+string(st), st, t0.Add(time.Duration(i)*time.Minute))}, out...)
	}
	return out
}

// many is n finished runs over 10 nodes, newest first.
func many(n int) []*runbooks.Run {
	out := make([]*runbooks.Run, 0, n)
	for i := n - 1; i >= 0; i-- {
		st := runbooks.StatusSucceeded
		if i%7 == 0 {
			st = runbooks.StatusFailed
		}
		out = append(out, fixtureRun(fmt.Sprintf("run-%04d", i), fmt.Sprintf("node-%d", i%10), st, t0.Add(-time.Duration(n-i)*time.Minute)))
	}
	return out
}

// fakeNodes is the cluster's side.
type fakeNodes struct {
	nodes  map[string]*NodeState
	events map[string][]Event
	err    error
}

func (f *fakeNodes) Node(_ context.Context, name string) (*NodeState, error) {
	if f.err != nil {
		return nil, f.err
	}
	if n, ok := f.nodes[name]; ok {
		return n, nil
	}
	return nil, ErrNodeNotFound
}

func (f *fakeNodes) Escalated(context.Context) ([]*NodeState, error) {
	if f.err != nil {
		return nil, f.err
	}
	var out []*NodeState
	for _, n := range f.nodes {
		if n.NeedsAttention {
			out = append(out, n)
		}
	}
	return out, nil
}

func (f *fakeNodes) Events(_ context.Context, name string) ([]Event, error) {
	if f.err != nil {
		return nil, f.err
	}
	return f.events[name], nil
}

// fakeActions records the actions done.
type fakeActions struct {
	mu   sync.Mutex
	done []string
	err  error
}

func (f *fakeActions) record(s string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.done = append(f.done, s)
	return nil
}

func (f *fakeActions) Pause(_ context.Context, by, reason string) error {
	return f.record("pause " + by + ": " + reason)
}
func (f *fakeActions) Resume(_ context.Context, by string) error { return f.record("resume " + by) }
func (f *fakeActions) ClearEscalation(_ context.Context, node, by, reason string) error {
	if node == "ghost" {
		return ErrNodeNotFound
	}
	return f.record("clear " + node + " " + by + ": " + reason)
}

func (f *fakeActions) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.done...)
}

// basicIdentity: the basic auth user (the web configuration checked it).
func basicIdentity(r *http.Request) (string, error) {
	if u, _, ok := r.BasicAuth(); ok && u != "" {
		return u, nil
	}
	return "", errors.New("sign in: basic auth")
}
