package runbooks

import (
	"context"
	"time"
)

// poll calls check every Deps.Poll until it reports done, the deadline
// passes (ok false) or ctx ends (error).
func (x *Exec) poll(ctx context.Context, deadline time.Time, check func() (bool, error)) (bool, error) {
	every := x.Poll
	if every <= 0 {
		every = time.Second
	}
	for {
		done, err := check()
		if err != nil || done {
			return done, err
		}
		if !x.Now().Before(deadline) {
			return false, nil
		}
		t := time.NewTimer(min(every, max(deadline.Sub(x.Now()), time.Millisecond)))
		select {
		case <-ctx.Done():
			t.Stop()
			return false, ctx.Err()
		case <-t.C:
		}
	}
}

func (x *Exec) priorTime(key string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, x.Run.Prior[key])
	return t
}

func (x *Exec) setPriorTime(key string) time.Time {
	now := x.Now()
	x.Run.SetPrior(key, now.UTC().Format(time.RFC3339Nano))
	return now
}

func since(a, b time.Time) time.Duration { return a.Sub(b).Round(100 * time.Millisecond) }
