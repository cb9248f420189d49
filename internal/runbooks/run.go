package runbooks

import (
	"time"
)

// Status of a run.
type Status string

// Run statuses. Succeeded and Failed are final.
const (
	StatusPending   Status = "pending"
	StatusRunning   Status = "running"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	// StatusEscalated: the run stopped and handed the node to a human
	// (annotation, label, Warning Event); nothing more is tried.
	StatusEscalated Status = "escalated"
	// StatusDeferred: not started yet; a safety limit refused it for now
	// (Hold says why and until when). It stays queued.
	StatusDeferred Status = "deferred"
	// StatusHeld: started, waiting before a destructive step.
	StatusHeld Status = "held"
	// StatusCancelled: the alert resolved before the run started or
	// before its next destructive step; nothing more was done.
	StatusCancelled Status = "cancelled"
)

// Final reports whether no more steps will run.
func (s Status) Final() bool {
	return s == StatusSucceeded || s == StatusFailed || s == StatusEscalated || s == StatusCancelled
}

// Outcome of one step.
type Outcome string

// Step outcomes recorded in the timeline.
const (
	OutcomeStarted Outcome = "started" // saved before acting; replaced when the step ends
	OutcomeDone    Outcome = "done"    // the step changed something
	OutcomeSkipped Outcome = "skipped" // nothing to do (already in the wanted state)
	OutcomeDryRun  Outcome = "dry-run" // what would have been done, nothing changed
	OutcomeFailed  Outcome = "failed"
	// OutcomeEscalated: the step found something it must not fix alone.
	OutcomeEscalated Outcome = "escalated"
)

// Entry is one line of a run's timeline.
type Entry struct {
	Step    string    `json:"step"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end,omitzero"`
	Outcome Outcome   `json:"outcome"`
	Detail  string    `json:"detail,omitempty"`
	Worker  string    `json:"worker,omitempty"`
	Fence   int64     `json:"fence,omitempty"`
}

// Run is one execution of a runbook against one node. It is what the
// store persists after every step.
type Run struct {
	ID          string            `json:"id"`
	Runbook     string            `json:"runbook"`
	Route       string            `json:"route"`
	Node        string            `json:"node"`
	Fingerprint string            `json:"fingerprint,omitempty"`
	AlertStart  time.Time         `json:"alertStartsAt,omitzero"`
	Labels      map[string]string `json:"labels,omitempty"`
	Params      map[string]string `json:"params,omitempty"`
	DryRun      bool              `json:"dryRun"`
	// RequestedBy and Reason: who asked for a manual run (route "manual")
	// and why; empty for runs an alert started.
	RequestedBy string `json:"requestedBy,omitempty"`
	Reason      string `json:"reason,omitempty"`

	Status   Status            `json:"status"`
	Next     int               `json:"next"`               // index of the next step to run
	Prior    map[string]string `json:"prior,omitempty"`    // the node's state before the run, as steps recorded it
	Timeline []Entry           `json:"timeline,omitempty"` // one entry per step attempt
	Error    string            `json:"error,omitempty"`
	Attempts int               `json:"attempts"`           // how many times a worker picked the run up
	Hold     *Hold             `json:"hold,omitempty"`     // why it waits, while deferred or held
	Admitted bool              `json:"admitted,omitempty"` // the safety gate let it start
	// Evidence is what the capture step kept from the node before a reset
	// (capture_max_bytes of output in all).
	Evidence []Evidence `json:"evidence,omitempty"`
	// Fence is the fencing number of the node lease under which the record
	// was last written. The store refuses a write with a lower fence (a
	// stale holder that woke up after a takeover).
	Fence int64 `json:"fence,omitempty"`

	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// Evidence is one command the capture step ran on the node and the tail
// of its output, or (no Command) why nothing was captured.
type Evidence struct {
	Command   string    `json:"command,omitempty"`
	Output    string    `json:"output,omitempty"`
	Truncated bool      `json:"truncated,omitempty"` // Output is the tail of a longer output
	ExitCode  int       `json:"exitCode,omitempty"`
	Error     string    `json:"error,omitempty"`
	At        time.Time `json:"at"`
}

// SetPrior records a fact about the node's state before the run changed it.
func (r *Run) SetPrior(k, v string) {
	if r.Prior == nil {
		r.Prior = map[string]string{}
	}
	r.Prior[k] = v
}
