package safety

import (
	"context"
	"fmt"
	"time"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// RunLister lists recent runs (the run store).
type RunLister interface {
	List(ctx context.Context, limit int) ([]*runbooks.Run, error)
}

// RunSummary is a waiting run in the status report.
type RunSummary struct {
	ID      string         `json:"id"`
	Node    string         `json:"node"`
	Runbook string         `json:"runbook"`
	Status  string         `json:"status"`
	Hold    *runbooks.Hold `json:"hold,omitempty"`
}

// Budget is the cluster-wide reboot budget.
type Budget struct {
	Limit       string    `json:"limit"`
	Remaining   int       `json:"remaining"`
	NextAllowed time.Time `json:"nextAllowed,omitzero"`
}

// Status is what `receiver status` and GET /api/v1/status show.
type Status struct {
	Paused     *PauseInfo   `json:"paused"`
	Breaker    BreakerState `json:"breaker"`
	ActiveRuns []string     `json:"activeRuns"`
	Held       []RunSummary `json:"held"`
	Deferred   []RunSummary `json:"deferred"`
	Reboots    Budget       `json:"reboots"`
	Limits     StatusLimits `json:"limits"`
	Escalated  []RunSummary `json:"escalated"`
}

// StatusLimits echoes the configured caps.
type StatusLimits struct {
	MaxRuns             int    `json:"maxConcurrentRuns"`
	MaxControlPlaneRuns int    `json:"maxConcurrentControlPlane"`
	NodeRuns            string `json:"nodeRuns"`
	Silences            bool   `json:"silencesChecked"`
}

// Status reports the gate's state from Redis (no cluster access needed).
func (g *Gate) Status(ctx context.Context, runs RunLister) (*Status, error) {
	st := &Status{ActiveRuns: []string{}, Held: []RunSummary{}, Deferred: []RunSummary{}, Escalated: []RunSummary{}}
	var err error
	if st.Paused, err = Paused(ctx, g.Redis, g.Prefix); err != nil {
		return nil, fmt.Errorf("pause state: %w", err)
	}
	if st.Breaker, err = g.Breaker().State(ctx); err != nil {
		return nil, fmt.Errorf("breaker state: %w", err)
	}
	if hs, err := g.ActiveRuns(ctx); err == nil {
		st.ActiveRuns = append(st.ActiveRuns, hs...)
	} else {
		return nil, fmt.Errorf("active runs: %w", err)
	}
	res, err := g.Rate.Peek(ctx, rateReboots, g.L.Reboots)
	if err != nil {
		return nil, fmt.Errorf("reboot budget: %w", err)
	}
	st.Reboots = Budget{Limit: fmt.Sprintf("%d per %s (burst %d)", g.L.Reboots.Rate, g.L.Reboots.Period, g.L.Reboots.Burst), Remaining: res.Remaining}
	if res.Remaining == 0 {
		st.Reboots.NextAllowed = g.now().Add(res.RetryAfter).UTC()
	}
	st.Limits = StatusLimits{MaxRuns: g.L.MaxRuns, MaxControlPlaneRuns: g.L.MaxControlPlaneRuns,
		NodeRuns: fmt.Sprintf("%d per %s", g.L.NodeRuns, g.L.NodeWindow), Silences: g.Silences != nil}
	if runs != nil {
		list, err := runs.List(ctx, 1000)
		if err != nil {
			return nil, fmt.Errorf("runs: %w", err)
		}
		for _, r := range list {
			s := RunSummary{ID: r.ID, Node: r.Node, Runbook: r.Runbook, Status: string(r.Status), Hold: r.Hold}
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
	}
	return st, nil
}
