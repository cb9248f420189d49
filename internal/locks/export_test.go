package locks

import (
	"context"
	"time"
)

// AcquireToken is Acquire with a chosen token, to replay an acquisition the
// way go-redis does when it re-sends a command whose reply was lost.
func (l *Locker) AcquireToken(ctx context.Context, name, token string, ttl time.Duration) (*Lease, error) {
	return l.acquire(ctx, name, token, ttl)
}

// LockKey and FenceKey expose the key layout so tests can tamper with Redis.
func (l *Locker) LockKey(name string) string  { return l.lockKey(name) }
func (l *Locker) FenceKey(name string) string { return l.fenceKey(name) }
