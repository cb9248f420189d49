package locks

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Lease is one acquisition of a lock. Its methods are safe for concurrent use.
type Lease struct {
	locker *Locker
	name   string
	token  string
	fence  int64
	key    string
	value  string // "<token>:<fence>", what Redis holds while the lease is ours
	lost   atomic.Bool

	mu        sync.Mutex
	ttl       time.Duration
	renewedAt time.Time // send time of the last successful acquire/refresh
	deadline  time.Time // conservative local expiry: renewedAt + ttl - drift
}

func newLease(l *Locker, name, token string, fence int64, ttl time.Duration, start time.Time) *Lease {
	s := &Lease{
		locker: l,
		name:   name,
		token:  token,
		fence:  fence,
		key:    l.lockKey(name),
		value:  token + ":" + strconv.FormatInt(fence, 10),
	}
	s.renewed(ttl, start)
	return s
}

// Name is the lock name (the node).
func (s *Lease) Name() string { return s.name }

// Token is the random token identifying this acquisition.
func (s *Lease) Token() string { return s.token }

// Fence is greater than the fence of every earlier acquisition of this name.
func (s *Lease) Fence() int64 { return s.fence }

// TTL is the lease duration set by the last successful Acquire or Refresh.
func (s *Lease) TTL() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ttl
}

// Refresh extends the lease to ttl from now if it is still ours; otherwise
// it returns an error wrapping ErrLeaseLost. Other errors (Redis unreachable)
// leave the lease's state unknown: it stays valid until its previous expiry.
func (s *Lease) Refresh(ctx context.Context, ttl time.Duration) error {
	ttl, err := checkTTL(ttl)
	if err != nil {
		return err
	}
	start := time.Now()
	n, err := refreshScript.Run(ctx, s.locker.rdb, []string{s.key}, s.value, ttl.Milliseconds()).Int64()
	if err != nil {
		return fmt.Errorf("locks: refresh %q: %w", s.name, err)
	}
	if n != 1 {
		s.markLost()
		return fmt.Errorf("locks: refresh %q (fence %d): %w", s.name, s.fence, ErrLeaseLost)
	}
	s.renewed(ttl, start)
	return nil
}

// Release deletes the lock if it is still ours. If it is not (expired or
// taken over) nothing is deleted and the error wraps ErrLeaseLost.
func (s *Lease) Release(ctx context.Context) error {
	n, err := releaseScript.Run(ctx, s.locker.rdb, []string{s.key}, s.value).Int64()
	if err != nil {
		return fmt.Errorf("locks: release %q: %w", s.name, err)
	}
	if n != 1 {
		s.markLost()
		return fmt.Errorf("locks: release %q (fence %d): %w", s.name, s.fence, ErrLeaseLost)
	}
	return nil
}

func (s *Lease) renewed(ttl time.Duration, start time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if start.Before(s.renewedAt) {
		return // a later renewal already landed
	}
	s.ttl, s.renewedAt, s.deadline = ttl, start, start.Add(ttl-drift(ttl))
}

func (s *Lease) state() (ttl time.Duration, renewedAt, deadline time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ttl, s.renewedAt, s.deadline
}

// markLost counts the lease as lost, once.
func (s *Lease) markLost() {
	if s.lost.CompareAndSwap(false, true) {
		s.locker.m.lost.Inc()
	}
}

// drift is the margin for clock-rate differences between this process and
// Redis over one TTL (1% + 2ms, as in Redlock).
func drift(ttl time.Duration) time.Duration { return ttl/100 + 2*time.Millisecond }

// Check returns nil while the lease is ours as far as this process can
// tell: not known lost and its conservative local deadline not passed.
// Otherwise the error wraps ErrLeaseLost. It reads no Redis: it is meant
// to be called immediately before an irreversible action (a BMC reset),
// after the decision was committed with a fenced write.
func (s *Lease) Check() error {
	if s.lost.Load() {
		return fmt.Errorf("locks: %q (fence %d): %w", s.name, s.fence, ErrLeaseLost)
	}
	if _, _, deadline := s.state(); !time.Now().Before(deadline) {
		s.markLost()
		return fmt.Errorf("locks: %q (fence %d) past its local deadline %s: %w", s.name, s.fence, deadline.Format(time.RFC3339Nano), ErrLeaseLost)
	}
	return nil
}

// Remaining is how long the lease is valid by the local deadline (≤ 0:
// expired).
func (s *Lease) Remaining() time.Duration {
	_, _, deadline := s.state()
	return time.Until(deadline)
}
