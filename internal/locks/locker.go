package locks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/redisconn"
)

var (
	// ErrNotAcquired means another holder has the lock. Acquire wraps it with
	// the holder's fence and remaining TTL; test with errors.Is.
	ErrNotAcquired = errors.New("locks: not acquired")
	// ErrLeaseLost means the lease is no longer ours: it expired, was taken
	// over, or could not be renewed before it would expire.
	ErrLeaseLost = errors.New("locks: lease lost")
	// ErrNotReplicated means the lease was taken on the primary but fewer
	// replicas than Options.MinReplicas acknowledged it within
	// Options.ReplicationTimeout: a failover could forget it, so it was
	// released and counts as not acquired.
	ErrNotReplicated = errors.New("locks: not acknowledged by enough replicas")
)

// Options are optional Locker settings; the zero value is valid.
type Options struct {
	// Registerer receives the lock metrics. Nil: metrics are kept but not
	// registered.
	Registerer prometheus.Registerer
	// MinReplicas > 0: after taking a lease, wait (Redis WAIT, pipelined on
	// the same connection as the acquire script) until that many replicas
	// acknowledged it, for at most ReplicationTimeout (default 500ms);
	// otherwise release it and return ErrNotReplicated. Not for Redis
	// Cluster (WAIT has no key to route by); config refuses that.
	MinReplicas        int
	ReplicationTimeout time.Duration
}

// Locker hands out node leases stored in Redis under one key prefix.
type Locker struct {
	rdb         redis.Cmdable
	prefix      string
	m           *metrics
	minReplicas int
	replTimeout time.Duration
}

// New returns a Locker using rdb (a *redis.Client, *redis.ClusterClient or
// any redis.UniversalClient) and keys under prefix, e.g. "node-healer". The
// prefix must not contain '{' or '}' (keys use a {name} hash tag). Pass at
// most one Options.
func New(rdb redis.Cmdable, prefix string, opts ...Options) *Locker {
	o := lastOptions(opts)
	if o.ReplicationTimeout <= 0 {
		o.ReplicationTimeout = 500 * time.Millisecond
	}
	return &Locker{rdb: rdb, prefix: prefix, m: newMetrics(o.Registerer), minReplicas: o.MinReplicas, replTimeout: o.ReplicationTimeout}
}

func (l *Locker) lockKey(name string) string  { return l.prefix + ":lock:{" + name + "}" }
func (l *Locker) fenceKey(name string) string { return l.prefix + ":fence:{" + name + "}" }

// Acquire takes the lease on name for ttl (millisecond precision, at least
// 1ms) if nobody holds it. If someone does, the error wraps ErrNotAcquired.
// Acquire does not wait or retry on contention.
func (l *Locker) Acquire(ctx context.Context, name string, ttl time.Duration) (*Lease, error) {
	return l.acquire(ctx, name, newToken(), ttl)
}

func (l *Locker) acquire(ctx context.Context, name, token string, ttl time.Duration) (*Lease, error) {
	ttl, err := checkArgs(name, ttl)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	keys := []string{l.lockKey(name), l.fenceKey(name)}
	var res []any
	var acked int64 = -1
	if l.minReplicas > 0 {
		res, acked, err = l.acquireReplicated(ctx, keys, token, ttl)
	} else {
		res, err = acquireScript.Run(ctx, l.rdb, keys, token, ttl.Milliseconds()).Slice()
	}
	if err != nil {
		l.m.failed.Inc()
		return nil, fmt.Errorf("locks: acquire %q: %w", name, err)
	}
	ok, fence, pttl, err := parseAcquire(res)
	if err != nil {
		l.m.failed.Inc()
		return nil, fmt.Errorf("locks: acquire %q: %w", name, err)
	}
	if !ok {
		l.m.contended.Inc()
		return nil, fmt.Errorf("locks: %q held by fence %d, %s left: %w", name, fence, pttl, ErrNotAcquired)
	}
	lease := newLease(l, name, token, fence, ttl, start)
	if acked >= 0 && acked < int64(l.minReplicas) {
		l.m.notReplicated.Inc()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.replTimeout)
		defer cancel()
		_ = lease.Release(rctx)
		return nil, fmt.Errorf("locks: %q (fence %d): %d of %d replicas acknowledged within %s; released: %w",
			name, fence, acked, l.minReplicas, l.replTimeout, ErrNotReplicated)
	}
	l.m.acquired.Inc()
	return lease, nil
}

// acquireReplicated runs the acquire script and WAIT on one connection and
// returns the script's reply and how many replicas acknowledged.
func (l *Locker) acquireReplicated(ctx context.Context, keys []string, token string, ttl time.Duration) ([]any, int64, error) {
	eval, acked, err := redisconn.EvalWait(ctx, l.rdb, acquireScript, keys, []any{token, ttl.Milliseconds()}, l.minReplicas, l.replTimeout, nil)
	if err != nil {
		return nil, 0, err
	}
	res, err := eval.Slice()
	return res, acked, err
}

// Holder reports who holds name: the holder's token and fence and the time
// left on its lease. A free lock returns an empty token and no error.
func (l *Locker) Holder(ctx context.Context, name string) (token string, fence int64, ttlLeft time.Duration, err error) {
	res, err := holderScript.Run(ctx, l.rdb, []string{l.lockKey(name)}).Slice()
	if err != nil {
		return "", 0, 0, fmt.Errorf("locks: holder %q: %w", name, err)
	}
	if len(res) == 0 {
		return "", 0, 0, nil
	}
	if len(res) != 2 {
		return "", 0, 0, fmt.Errorf("locks: holder %q: unexpected reply %v", name, res)
	}
	v, ok1 := res[0].(string)
	ms, ok2 := res[1].(int64)
	if !ok1 || !ok2 {
		return "", 0, 0, fmt.Errorf("locks: holder %q: unexpected reply %v", name, res)
	}
	token, fence, err = splitValue(v)
	if err != nil {
		return "", 0, 0, fmt.Errorf("locks: holder %q: %w", name, err)
	}
	return token, fence, time.Duration(ms) * time.Millisecond, nil
}

func checkArgs(name string, ttl time.Duration) (time.Duration, error) {
	if name == "" {
		return 0, errors.New("locks: empty lock name")
	}
	return checkTTL(ttl)
}

func checkTTL(ttl time.Duration) (time.Duration, error) {
	// Truncate so the local view of the lease never outlasts Redis's.
	ttl = ttl.Truncate(time.Millisecond)
	if ttl < time.Millisecond {
		return 0, fmt.Errorf("locks: TTL %s is below 1ms", ttl)
	}
	return ttl, nil
}

func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it crashes instead).
	return hex.EncodeToString(b)
}

// parseAcquire decodes {ok, fence, pttl}.
func parseAcquire(res []any) (ok bool, fence int64, pttl time.Duration, err error) {
	if len(res) != 3 {
		return false, 0, 0, fmt.Errorf("unexpected reply %v", res)
	}
	flag, ok1 := res[0].(int64)
	f, ok2 := res[1].(string)
	ms, ok3 := res[2].(int64)
	if !ok1 || !ok2 || !ok3 {
		return false, 0, 0, fmt.Errorf("unexpected reply %v", res)
	}
	fence, err = strconv.ParseInt(f, 10, 64)
	if err != nil {
		return false, 0, 0, fmt.Errorf("bad fence %q: %w", f, err)
	}
	return flag == 1, fence, time.Duration(ms) * time.Millisecond, nil
}

// splitValue splits a lock value "<token>:<fence>".
func splitValue(v string) (token string, fence int64, err error) {
	token, f, ok := strings.Cut(v, ":")
	if !ok {
		return "", 0, fmt.Errorf("malformed lock value (no fence)")
	}
	fence, err = strconv.ParseInt(f, 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("malformed lock value: bad fence %q", f)
	}
	return token, fence, nil
}

// lastOptions returns the last Options given, or the zero value.
func lastOptions(opts []Options) Options {
	if len(opts) == 0 {
		return Options{}
	}
	return opts[len(opts)-1]
}
