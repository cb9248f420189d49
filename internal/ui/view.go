package ui

import (
	"context"
	"sort"
	"time"

	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/safety"
)

// manualRoute is the route of runs asked for by hand (handlers.ManualRoute).
const manualRoute = "manual"

// recentFinished is how many finished runs the overview shows.
const recentFinished = 20

// base is what every page's layout needs.
type base struct {
	Title   string
	Now     time.Time
	Refresh int    // seconds; 0: the page does not refresh itself
	User    string // who is signed in ("" when nobody)
	NoAuth  string // why actions are refused, when they are
	CSRF    string
	Flash   string // what the last action did
	// CanAct: actions are wired and the person may use them.
	CanAct   bool
	Runbooks []string
	CanHeal  bool
}

// overviewPage is GET /.
type overviewPage struct {
	base
	Status    *safety.Status
	StatusErr string
	Active    []runView
	Held      []runView
	Deferred  []runView
	Escalated []escalatedView
	EscErr    string
	Finished  []runView
	Total     int // runs read
	More      bool
}

// runView is a run in a table.
type runView struct {
	*runbooks.Run
	Step      string    // the current (or last) step
	StepStart time.Time // when it started
	Alert     string    // the alert's name, or "manual"
	Ended     time.Time // final runs: when
	Manual    bool      // asked for by hand (route "manual"): no alert
}

type escalatedView struct {
	Node   string
	Run    string
	Reason string
	Since  time.Time
}

func viewOf(r *runbooks.Run) runView {
	v := runView{Run: r, Alert: r.Labels["alertname"], Manual: r.Route == manualRoute}
	if n := len(r.Timeline); n > 0 {
		last := r.Timeline[n-1]
		v.Step, v.StepStart = last.Step, last.Start
	}
	if r.Hold != nil && r.Hold.Step != "" && (r.Status == runbooks.StatusHeld || r.Status == runbooks.StatusDeferred) {
		v.Step = r.Hold.Step
	}
	if r.Status.Final() {
		v.Ended = r.Updated
	}
	return v
}

// listed is a RunLister over runs already read.
type listed []*runbooks.Run

func (l listed) List(_ context.Context, limit int) ([]*runbooks.Run, error) {
	if limit < len(l) {
		return l[:limit], nil
	}
	return l, nil
}

// buildOverview sorts runs (newest first) into the overview's sections.
func buildOverview(st *safety.Status, runs []*runbooks.Run, escalated []*NodeState, nodesKnown bool) overviewPage {
	p := overviewPage{Status: st, Total: len(runs)}
	for _, r := range runs {
		switch r.Status {
		case runbooks.StatusRunning, runbooks.StatusPending:
			p.Active = append(p.Active, viewOf(r))
		case runbooks.StatusHeld:
			p.Held = append(p.Held, viewOf(r))
		case runbooks.StatusDeferred:
			p.Deferred = append(p.Deferred, viewOf(r))
		default:
			if r.Status.Final() {
				if len(p.Finished) < recentFinished {
					p.Finished = append(p.Finished, viewOf(r))
				} else {
					p.More = true
				}
			}
		}
	}
	// Oldest first among what waits: the longest wait on top.
	for _, l := range [][]runView{p.Active, p.Held, p.Deferred} {
		sort.SliceStable(l, func(i, j int) bool { return l[i].Created.Before(l[j].Created) })
	}
	if nodesKnown {
		// The node's mark is the truth: a label removed by hand is no
		// longer waiting, whatever the run record says.
		for _, n := range escalated {
			ev := escalatedView{Node: n.Name, Run: n.EscalatedByRun, Reason: n.Attention}
			for _, r := range runs {
				if r.ID == n.EscalatedByRun {
					ev.Since = r.Updated
					break
				}
			}
			p.Escalated = append(p.Escalated, ev)
		}
		sort.Slice(p.Escalated, func(i, j int) bool { return p.Escalated[i].Node < p.Escalated[j].Node })
	} else if st != nil {
		for _, s := range st.Escalated {
			ev := escalatedView{Node: s.Node, Run: s.ID}
			if s.Hold != nil {
				ev.Reason = s.Hold.Reason
			}
			p.Escalated = append(p.Escalated, ev)
		}
	}
	return p
}

// runsPage is GET /runs.
type runsPage struct {
	base
	Runs         []runView
	Node, Status string
	Total        int // runs read
	Matched      int // runs the filter matched
	MoreURL      string
	Statuses     []string
}

// runPage is GET /runs/ID.
type runPage struct {
	base
	Run       runView
	Steps     []stepView
	Events    []Event
	EventsErr string
	Node      *NodeState
}

type stepView struct {
	runbooks.Entry
	SinceAlert time.Duration
	Took       time.Duration
	Running    bool
}

// stepsOf is the run's timeline with times since the alert (or, for a
// manual run, since the run was created).
func stepsOf(r *runbooks.Run, now time.Time) []stepView {
	origin := r.AlertStart
	if origin.IsZero() {
		origin = r.Created
	}
	out := make([]stepView, 0, len(r.Timeline))
	for _, e := range r.Timeline {
		s := stepView{Entry: e, SinceAlert: e.Start.Sub(origin)}
		switch {
		case !e.End.IsZero():
			s.Took = e.End.Sub(e.Start)
		case e.Outcome == runbooks.OutcomeStarted && !r.Status.Final():
			s.Running, s.Took = true, now.Sub(e.Start)
		}
		out = append(out, s)
	}
	return out
}

// nodePage is GET /nodes/NAME.
type nodePage struct {
	base
	Name        string
	Node        *NodeState
	NodeErr     string
	Silence     *safety.Hold
	SilenceErr  string
	Silences    bool // an Alertmanager is configured
	Runs        []runView
	Events      []Event
	EventsErr   string
	ActiveRunID string
	RunCap      *RunCap
	RunCapErr   string
}

// errorPage is any refusal or failure.
type errorPage struct {
	base
	Code int
	Msg  string
	Back string
}
