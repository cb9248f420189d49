package locks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Limit is a GCRA rate: Rate events per Period on average, at most Burst of
// them back to back. {Rate: 1, Period: 10 * time.Minute, Burst: 1} admits
// one event, then one more every 10 minutes.
type Limit struct {
	Rate   int
	Period time.Duration
	Burst  int
}

// interval is the emission interval Period/Rate in µs, rounded up so the
// limiter never admits faster than the configured rate.
func (l Limit) interval() (int64, error) {
	if l.Rate < 1 || l.Period <= 0 || l.Burst < 1 {
		return 0, fmt.Errorf("locks: invalid limit %+v: rate and burst must be at least 1, period positive", l)
	}
	per := l.Period / time.Duration(l.Rate)
	if per < time.Microsecond {
		return 0, fmt.Errorf("locks: invalid limit %+v: interval below 1µs", l)
	}
	return int64((per + time.Microsecond - 1) / time.Microsecond), nil
}

// Result is the outcome of Allow or Peek, measured on the Redis clock.
type Result struct {
	// Allowed: Allow admitted the event; for Peek, an Allow now would.
	Allowed bool
	// Remaining is how many more events would be admitted right now.
	Remaining int
	// RetryAfter is how long until the next event would be admitted; 0 when
	// Remaining > 0.
	RetryAfter time.Duration
	// ResetAfter is how long until the full burst is available again.
	ResetAfter time.Duration
}

// RateLimiter is a GCRA rate limiter shared by every replica using the same
// Redis and key prefix. Its methods are safe for concurrent use.
type RateLimiter struct {
	rdb    redis.Cmdable
	prefix string
	m      *rateMetrics
}

// NewRateLimiter returns a RateLimiter on rdb with keys under prefix (no '{'
// or '}'). Pass at most one Options; several limiters (and Slots) may share
// one Registerer.
func NewRateLimiter(rdb redis.Cmdable, prefix string, opts ...Options) *RateLimiter {
	o := lastOptions(opts)
	return &RateLimiter{rdb: rdb, prefix: prefix, m: newRateMetrics(o.Registerer)}
}

func (r *RateLimiter) rateKey(key string) string { return r.prefix + ":rate:{" + key + "}" }

// Allow admits one event under key if limit allows it now, atomically across
// replicas. A refused event consumes nothing. If go-redis re-sends the
// command after a lost reply, an event may be counted twice: the limiter errs
// towards refusing, never towards admitting.
func (r *RateLimiter) Allow(ctx context.Context, key string, limit Limit) (Result, error) {
	res, err := r.run(ctx, key, limit, 1)
	switch {
	case err != nil:
		r.m.failed.Inc()
		return Result{}, fmt.Errorf("locks: rate allow %q: %w", key, err)
	case res.Allowed:
		r.m.allowed.Inc()
	default:
		r.m.limited.Inc()
	}
	return res, nil
}

// Peek reports what Allow would answer now without consuming anything: the
// budget left and when the next event would be admitted.
func (r *RateLimiter) Peek(ctx context.Context, key string, limit Limit) (Result, error) {
	res, err := r.run(ctx, key, limit, 0)
	if err != nil {
		return Result{}, fmt.Errorf("locks: rate peek %q: %w", key, err)
	}
	return res, nil
}

func (r *RateLimiter) run(ctx context.Context, key string, limit Limit, consume int) (Result, error) {
	if key == "" {
		return Result{}, errors.New("locks: empty rate key")
	}
	t, err := limit.interval()
	if err != nil {
		return Result{}, err
	}
	v, err := gcraScript.Run(ctx, r.rdb, []string{r.rateKey(key)}, t, limit.Burst, consume).Int64Slice()
	if err != nil {
		return Result{}, err
	}
	if len(v) != 4 {
		return Result{}, fmt.Errorf("unexpected reply %v", v)
	}
	return Result{
		Allowed:    v[0] == 1,
		Remaining:  int(v[1]),
		RetryAfter: time.Duration(v[2]) * time.Microsecond,
		ResetAfter: time.Duration(v[3]) * time.Microsecond,
	}, nil
}

// gcraScript: KEYS[1] rate key (holds the theoretical arrival time, TAT, in
// µs of Redis TIME); ARGV[1] emission interval T in µs, ARGV[2] burst B,
// ARGV[3] 1 to consume (Allow) or 0 to look (Peek).
//
// An event at now is admitted when TAT - now <= (B-1)*T; admitting moves TAT
// to max(TAT, now) + T. The key expires once TAT is in the past, when it no
// longer matters. Returns {allowed, remaining, retry_after_us, reset_after_us}.
var gcraScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local T = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then tat = now end
-- Events that could still be admitted now, before this one.
local free = math.floor((now + burst * T - tat) / T)
if free > burst then free = burst end
if free < 0 then free = 0 end
local allowed = 0
if free >= 1 then
  allowed = 1
  if ARGV[3] == '1' then
    tat = tat + T
    free = free - 1
    redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', string.format('%d', math.ceil((tat - now) / 1000)))
  end
end
local retry = 0
if free < 1 then retry = tat + T - burst * T - now end
if retry < 0 then retry = 0 end
return {allowed, free, retry, tat - now}
`)

// Rate limiter results, the values of the result label.
const (
	resultAllowed = "allowed"
	resultLimited = "limited"
)

type rateMetrics struct {
	allowed, limited, failed prometheus.Counter
}

func newRateMetrics(reg prometheus.Registerer) *rateMetrics {
	c := registerShared(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "node_healer_rate_limit_total",
		Help: "Rate limiter decisions by result (allowed, limited, error).",
	}, []string{"result"}))
	return &rateMetrics{
		allowed: c.WithLabelValues(resultAllowed),
		limited: c.WithLabelValues(resultLimited),
		failed:  c.WithLabelValues(resultError),
	}
}

// registerShared registers c on reg, or returns the identical collector
// already registered there, so several constructors may share one
// Registerer. Any other registration error panics, like MustRegister.
func registerShared(reg prometheus.Registerer, c *prometheus.CounterVec) *prometheus.CounterVec {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if prev, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return prev
			}
		}
		panic(err)
	}
	return c
}
