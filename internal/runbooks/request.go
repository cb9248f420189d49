package runbooks

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Request asks for a runbook to run on a node: one accepted alert. The
// webhook creates it, the queue carries it, a worker turns it into a Run.
type Request struct {
	RunID       string            `json:"run"`
	Fingerprint string            `json:"fingerprint"`
	StartsAt    time.Time         `json:"startsAt"`
	Node        string            `json:"node"`
	Route       string            `json:"route"`
	Runbook     string            `json:"runbook"`
	DryRun      bool              `json:"dryRun,omitzero"`
	Labels      map[string]string `json:"labels,omitempty"`
	Params      map[string]string `json:"params,omitempty"`
	Enqueued    time.Time         `json:"enqueued"`
	// RequestedBy and Reason are set on manual runs (POST /api/v1/runs,
	// receiver heal): who asked, and why.
	RequestedBy string `json:"requestedBy,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

// RunID derives a run's ID from the alert's identity (fingerprint and
// startsAt), so a duplicate delivery names the same run.
func RunID(fingerprint string, startsAt time.Time) string {
	h := sha256.Sum256([]byte(fingerprint + "|" + startsAt.UTC().Format(time.RFC3339Nano)))
	return hex.EncodeToString(h[:8])
}

// NewRun turns a request into a pending run.
func NewRun(q Request, now time.Time) *Run {
	if !q.Enqueued.IsZero() {
		now = q.Enqueued // the run exists from the moment its alert was accepted
	}
	return &Run{ID: q.RunID, Runbook: q.Runbook, Route: q.Route, Node: q.Node, Fingerprint: q.Fingerprint,
		AlertStart: q.StartsAt, Labels: q.Labels, Params: q.Params, DryRun: q.DryRun,
		RequestedBy: q.RequestedBy, Reason: q.Reason,
		Status: StatusPending, Created: now, Updated: now}
}
