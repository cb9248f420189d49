package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// RunbookDrainer adapts Drainer to runbooks.Drainer: policy refusals and
// misconfigured PodDisruptionBudgets escalate (a human must decide), a
// timeout maps to runbooks.ErrDrainTimeout, a dry run returns the plan.
type RunbookDrainer struct{ D *Drainer }

var _ runbooks.Drainer = RunbookDrainer{}

// Drain implements runbooks.Drainer.
func (a RunbookDrainer) Drain(ctx context.Context, node string, s runbooks.DrainSpec) (runbooks.DrainReport, error) {
	o := DrainOptions{DeleteEmptyDirData: s.DeleteEmptyDirData, Force: s.Force, EvictCritical: s.EvictCritical, Timeout: s.Timeout}
	if s.DryRun {
		p, err := a.D.Plan(ctx, node, o)
		if err != nil {
			return runbooks.DrainReport{}, classify(err)
		}
		sum := p.String()
		if perr := p.Err(); perr != nil {
			sum += "\n  (the drain would be refused: " + perr.Error() + ")"
		}
		return runbooks.DrainReport{Evicted: p.Evictions() + len(p.Terminating), Skipped: len(p.Skipped), Summary: sum}, nil
	}
	res, err := a.D.Drain(ctx, node, o)
	switch {
	case errors.Is(err, ErrDrainTimeout):
		return report(res), fmt.Errorf("%w: %w", runbooks.ErrDrainTimeout, err)
	case errors.Is(err, ErrDrainRefused), errors.Is(err, ErrMultiplePDBs), errors.Is(err, ErrPreEvictHook):
		return report(res), runbooks.Escalate("%v", err)
	case err != nil:
		return report(res), classify(err)
	}
	return report(res), nil
}

func report(r *DrainResult) runbooks.DrainReport {
	if r == nil {
		return runbooks.DrainReport{}
	}
	skipped := 0
	var parts []string
	for reason, n := range r.Skipped {
		skipped += n
		parts = append(parts, fmt.Sprintf("%d %s", n, reason))
	}
	s := fmt.Sprintf("evicted %d pods in %d waves in %s (%d API requests)", len(r.Evicted), len(r.Waves), r.Duration.Round(1e6), r.APIRequests)
	if len(parts) > 0 {
		s += "; left alone: " + strings.Join(parts, ", ")
	}
	if r.Blocked > 0 {
		s += fmt.Sprintf("; %d evictions held back by PodDisruptionBudgets and retried", r.Blocked)
	}
	return runbooks.DrainReport{Evicted: len(r.Evicted), Skipped: skipped, Summary: s}
}
