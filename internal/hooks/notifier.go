package hooks

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/safety"
)

// Notifier sends the non-blocking hooks in the background: Notify only
// encodes the run and queues a delivery per hook (a full queue drops it,
// counted as result "dropped"); Run's workers send each delivery up to
// Attempts times, waiting Backoff, then twice as long, between attempts.
type Notifier struct {
	Hooks   []*Hook // the non-blocking ones are sent; blocking ones are Checks
	Metrics *Metrics
	Log     *slog.Logger
	// QueueSize bounds the deliveries waiting (default 256).
	QueueSize int
	// Attempts per delivery (default 3); Backoff before the second
	// (default 1s, doubled each time).
	Attempts int
	Backoff  time.Duration
	// Workers send in parallel (default 2).
	Workers int
	Now     func() time.Time

	once      sync.Once
	queue     chan delivery
	announced seen
}

type delivery struct {
	hook  *Hook
	event string
	run   string
	body  []byte
}

func (n *Notifier) init() {
	n.once.Do(func() {
		size := n.QueueSize
		if size <= 0 {
			size = 256
		}
		n.queue = make(chan delivery, size)
	})
}

func (n *Notifier) now() time.Time {
	if n.Now != nil {
		return n.Now()
	}
	return time.Now()
}

func (n *Notifier) log() *slog.Logger {
	if n.Log != nil {
		return n.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Notify queues event for every non-blocking hook that wants it; it never
// waits.
func (n *Notifier) Notify(event string, run *runbooks.Run, step string) {
	n.init()
	for _, h := range n.Hooks {
		if h.Blocking || !h.Wants(event) {
			continue
		}
		body, err := encode(event, h.Name, step, run, n.now())
		if err != nil {
			n.log().Error("hook: cannot encode the run", "hook", h.Name, "event", event, "run", run.ID, "err", err)
			continue
		}
		select {
		case n.queue <- delivery{hook: h, event: event, run: run.ID, body: body}:
		default:
			n.Metrics.count(h.Name, ResultDropped)
			n.log().Warn("hook queue full: delivery dropped", "hook", h.Name, "event", event, "run", run.ID, "queue", cap(n.queue))
		}
	}
}

// OnFinish notifies run-finished (any final status) and, for an
// escalated run, escalated. It is runbooks.Executor.OnFinish.
func (n *Notifier) OnFinish(_ context.Context, run *runbooks.Run) {
	n.Notify(RunFinished, run, "")
	if run.Status == runbooks.StatusEscalated {
		n.Notify(Escalated, run, "")
	}
}

// Run sends queued deliveries until ctx ends; what is still queued then
// is not sent.
func (n *Notifier) Run(ctx context.Context) {
	n.init()
	workers := max(n.Workers, 1)
	if n.Workers == 0 {
		workers = 2
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case d := <-n.queue:
					n.send(ctx, d)
				}
			}
		})
	}
	wg.Wait()
	if left := len(n.queue); left > 0 {
		n.log().Warn("hook deliveries not sent at shutdown", "count", left)
	}
}

func (n *Notifier) send(ctx context.Context, d delivery) {
	attempts := n.Attempts
	if attempts <= 0 {
		attempts = 3
	}
	wait := n.Backoff
	if wait <= 0 {
		wait = time.Second
	}
	var a answer
	for i := range attempts {
		if i > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			wait *= 2
		}
		a = d.hook.post(ctx, d.event, d.body)
		if ctx.Err() != nil {
			return
		}
		n.Metrics.count(d.hook.Name, a.result)
		if a.result == ResultOK {
			return
		}
		n.log().Debug("hook attempt failed", "hook", d.hook.Name, "event", d.event, "run", d.run, "attempt", i+1, "result", a.result)
	}
	n.log().Warn("hook not delivered", "hook", d.hook.Name, "event", d.event, "run", d.run, "attempts", attempts, "err", a.reason(d.hook))
}

// Announce is a safety.Check that never holds: it sends before-destructive
// to the non-blocking hooks, once per (run, step), when the gate reaches
// it (after every check before it allowed the step).
func (n *Notifier) Announce() safety.Check { return announce{n} }

type announce struct{ n *Notifier }

func (a announce) Name() string { return "before-destructive hooks" }

func (a announce) Check(_ context.Context, run *runbooks.Run, step string, _ *safety.NodeInfo) (runbooks.Decision, error) {
	if a.n.announced.add(stepKey(run, step), a.n.now()) {
		a.n.Notify(BeforeDestructive, run, step)
	}
	return runbooks.Decision{Allow: true}, nil
}
