package locks

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Keep renews the lease every TTL/3 until stop is called or ctx ends. The
// returned context is cancelled, with a cause wrapping ErrLeaseLost, as soon as
// the lease is known to be lost or could have expired without a successful
// renewal (Redis unreachable until the local deadline). Check it before every
// step that acts on the node. stop ends renewal (it does not release the lease)
// and cancels the returned context; it may be called more than once. Call Keep
// once per lease.
func (s *Lease) Keep(ctx context.Context) (kept context.Context, stop func()) {
	kctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.keep(kctx, cancel)
	}()
	return kctx, func() {
		cancel(nil)
		<-done
	}
}

func (s *Lease) keep(ctx context.Context, cancel context.CancelCauseFunc) {
	ttl, renewedAt, _ := s.state()
	timer := time.NewTimer(max(0, time.Until(renewedAt.Add(ttl/3))))
	defer timer.Stop()
	lastErr := errors.New("no renewal attempted")
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		ttl, _, deadline := s.state()
		if !time.Now().Before(deadline) {
			s.markLost()
			cancel(fmt.Errorf("%w: %q (fence %d) not renewed before expiry; last error: %v",
				ErrLeaseLost, s.name, s.fence, lastErr))
			return
		}
		// Never wait for Redis past the deadline: a hung call must not hide expiry.
		rctx, rcancel := context.WithDeadline(ctx, deadline)
		err := s.Refresh(rctx, ttl)
		rcancel()
		switch {
		case err == nil:
			timer.Reset(ttl / 3)
		case errors.Is(err, ErrLeaseLost):
			cancel(err)
			return
		case ctx.Err() != nil:
			return
		default:
			lastErr = err
			timer.Reset(min(max(ttl/10, 10*time.Millisecond), time.Until(deadline)))
		}
	}
}
