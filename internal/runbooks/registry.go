package runbooks

import (
	"context"
	"fmt"
	"slices"
	"sort"
)

// StepFunc performs one step. It must check before it acts, so that
// running it again after an interruption is safe. In a dry run it must
// change nothing and return what it would do. The returned outcome is
// Done, Skipped or DryRun; detail is a human sentence for the timeline.
type StepFunc func(ctx context.Context, x *Exec) (Outcome, string, error)

// Step is a named step. Names are stable: they are persisted in run
// state and used as metric labels.
type Step struct {
	Name string
	// Destructive steps (cordon, drain, reboot…) pass through the safety
	// gate before they act.
	Destructive bool
	Do          StepFunc
}

// Runbook is an ordered list of steps.
type Runbook struct {
	Name        string
	Description string
	Steps       []Step
}

// Registry names the runbooks a route can use.
type Registry struct {
	books map[string]*Runbook
}

// NewRegistry builds a registry; duplicate or malformed runbooks are an error.
func NewRegistry(books ...*Runbook) (*Registry, error) {
	r := &Registry{books: map[string]*Runbook{}}
	for _, b := range books {
		if b.Name == "" || len(b.Steps) == 0 {
			return nil, fmt.Errorf("runbook %q: needs a name and at least one step", b.Name)
		}
		if _, dup := r.books[b.Name]; dup {
			return nil, fmt.Errorf("runbook %q registered twice", b.Name)
		}
		var names []string
		for _, s := range b.Steps {
			if s.Name == "" || s.Do == nil || slices.Contains(names, s.Name) {
				return nil, fmt.Errorf("runbook %q: step %q needs a unique name and a function", b.Name, s.Name)
			}
			names = append(names, s.Name)
		}
		r.books[b.Name] = b
	}
	return r, nil
}

// Get returns a runbook by name.
func (r *Registry) Get(name string) (*Runbook, bool) {
	b, ok := r.books[name]
	return b, ok
}

// Names lists the registered runbooks, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.books))
	for n := range r.books {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
