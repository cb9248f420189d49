package hooks

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/safety"
)

// KindHook is the hold kind of a run a blocking hook did not allow.
const KindHook = "hook"

// forget is how long an answer per (run, step) is remembered.
const forget = 24 * time.Hour

// seen remembers (run, step) pairs for a while, bounded by age.
type seen struct {
	mu sync.Mutex
	at map[string]time.Time
}

func stepKey(run *runbooks.Run, step string) string {
	return fmt.Sprintf("%s/%d/%s", run.ID, run.Next, step)
}

func (s *seen) has(k string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.at[k]
	return ok
}

// add records k and reports whether it was new.
func (s *seen) add(k string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.at == nil {
		s.at = map[string]time.Time{}
	}
	if _, ok := s.at[k]; ok {
		return false
	}
	for old, t := range s.at {
		if now.Sub(t) > forget {
			delete(s.at, old)
		}
	}
	s.at[k] = now
	return true
}

// Check is a blocking before-destructive hook as a safety.Check: the run
// goes on only once the hook answered 2xx for this step. A 2xx is
// remembered for the (run, step), so the gate's polling does not ask
// again; while the hook refuses (or does not answer) it is asked at
// every poll.
type Check struct {
	Hook    *Hook
	Metrics *Metrics
	Log     *slog.Logger
	Now     func() time.Time

	allowed seen
}

var _ safety.Check = (*Check)(nil)

// Name implements safety.Check.
func (c *Check) Name() string { return "hook " + c.Hook.Name }

func (c *Check) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Check implements safety.Check.
func (c *Check) Check(ctx context.Context, run *runbooks.Run, step string, _ *safety.NodeInfo) (runbooks.Decision, error) {
	k := stepKey(run, step)
	if c.allowed.has(k) {
		return runbooks.Decision{Allow: true}, nil
	}
	body, err := encode(BeforeDestructive, c.Hook.Name, step, run, c.now())
	if err != nil {
		return runbooks.Decision{}, fmt.Errorf("hook %s: encode the run: %w", c.Hook.Name, err)
	}
	a := c.Hook.post(ctx, BeforeDestructive, body)
	c.Metrics.count(c.Hook.Name, a.result)
	if a.result == ResultOK {
		c.allowed.add(k, c.now())
		return runbooks.Decision{Allow: true}, nil
	}
	if ctx.Err() != nil {
		return runbooks.Decision{}, ctx.Err()
	}
	if c.Log != nil {
		c.Log.Debug("blocking hook did not allow the step", "hook", c.Hook.Name, "run", run.ID, "node", run.Node, "step", step, "result", a.result, "code", a.code)
	}
	return runbooks.Decision{Kind: KindHook, Reason: a.reason(c.Hook)}, nil
}
