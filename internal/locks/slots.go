package locks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// ErrSlotLost means the holder no longer has its slot: it expired (and may
// since have been given to someone else) or was released.
var ErrSlotLost = errors.New("locks: slot lost")

// Slots caps how many holders a pool admits at once, across replicas. Each
// pool is a sorted set of holders scored by expiry on the Redis clock, so a
// crashed holder's slot frees itself after its TTL. Methods are safe for
// concurrent use.
type Slots struct {
	rdb    redis.Cmdable
	prefix string
	m      *slotsMetrics
}

// NewSlots returns Slots on rdb with keys under prefix (no '{' or '}'). Pass
// at most one Options; Slots and RateLimiters may share one Registerer.
func NewSlots(rdb redis.Cmdable, prefix string, opts ...Options) *Slots {
	o := lastOptions(opts)
	return &Slots{rdb: rdb, prefix: prefix, m: newSlotsMetrics(o.Registerer)}
}

func (s *Slots) poolKey(pool string) string { return s.prefix + ":slots:{" + pool + "}" }

// Acquire gives holder a slot in pool for ttl (millisecond precision) if
// fewer than limit unexpired holders exist. If holder already has a slot, its
// expiry is moved to ttl from now and ok is true whatever the limit (so a
// retried Acquire is harmless). held is the number of holders afterwards.
// A full pool is ok == false with a nil error.
func (s *Slots) Acquire(ctx context.Context, pool, holder string, limit int, ttl time.Duration) (ok bool, held int, err error) {
	ttl, err = checkSlotArgs(pool, holder, ttl)
	if err == nil && limit < 1 {
		err = fmt.Errorf("locks: slot limit %d is below 1", limit)
	}
	if err != nil {
		s.m.failed.Inc()
		return false, 0, err
	}
	v, err := slotAcquireScript.Run(ctx, s.rdb, []string{s.poolKey(pool)}, holder, limit, ttl.Milliseconds()).Int64Slice()
	if err == nil && len(v) != 2 {
		err = fmt.Errorf("unexpected reply %v", v)
	}
	if err != nil {
		s.m.failed.Inc()
		return false, 0, fmt.Errorf("locks: acquire slot %q in %q: %w", holder, pool, err)
	}
	if v[0] != 1 {
		s.m.full.Inc()
		return false, int(v[1]), nil
	}
	s.m.acquired.Inc()
	return true, int(v[1]), nil
}

// Refresh moves holder's expiry to ttl from now. If holder has no unexpired
// slot, nothing changes and the error wraps ErrSlotLost.
func (s *Slots) Refresh(ctx context.Context, pool, holder string, ttl time.Duration) error {
	ttl, err := checkSlotArgs(pool, holder, ttl)
	if err != nil {
		return err
	}
	n, err := slotRefreshScript.Run(ctx, s.rdb, []string{s.poolKey(pool)}, holder, ttl.Milliseconds()).Int64()
	if err != nil {
		return fmt.Errorf("locks: refresh slot %q in %q: %w", holder, pool, err)
	}
	if n != 1 {
		return fmt.Errorf("locks: refresh slot %q in %q: %w", holder, pool, ErrSlotLost)
	}
	return nil
}

// Release frees holder's slot. If it had none (expired or already released)
// the error wraps ErrSlotLost; the pool is unchanged either way.
func (s *Slots) Release(ctx context.Context, pool, holder string) error {
	n, err := slotReleaseScript.Run(ctx, s.rdb, []string{s.poolKey(pool)}, holder).Int64()
	if err != nil {
		return fmt.Errorf("locks: release slot %q in %q: %w", holder, pool, err)
	}
	if n != 1 {
		return fmt.Errorf("locks: release slot %q in %q: %w", holder, pool, ErrSlotLost)
	}
	return nil
}

// Holders lists pool's unexpired holders, soonest expiry first.
func (s *Slots) Holders(ctx context.Context, pool string) ([]string, error) {
	v, err := slotHoldersScript.Run(ctx, s.rdb, []string{s.poolKey(pool)}).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("locks: slot holders of %q: %w", pool, err)
	}
	return v, nil
}

func checkSlotArgs(pool, holder string, ttl time.Duration) (time.Duration, error) {
	if pool == "" || holder == "" {
		return 0, errors.New("locks: empty slot pool or holder")
	}
	return checkTTL(ttl)
}

// The slot scripts share a prelude: now in ms of Redis TIME, expired holders
// (score <= now) removed. After a write the key's own expiry is set to the
// latest holder's, so an abandoned pool disappears.
const slotPrelude = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now))
local function expire()
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIRE', KEYS[1], string.format('%d', math.max(1, tonumber(last[2]) - now)))
  end
end
`

// slotAcquireScript: KEYS[1] pool key; ARGV[1] holder, ARGV[2] limit,
// ARGV[3] TTL in ms. Returns {1, held} if holder has a slot afterwards,
// {0, held} if the pool is full.
var slotAcquireScript = redis.NewScript(slotPrelude + `
local held = redis.call('ZCARD', KEYS[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  if held >= tonumber(ARGV[2]) then return {0, held} end
  held = held + 1
end
redis.call('ZADD', KEYS[1], string.format('%d', now + tonumber(ARGV[3])), ARGV[1])
expire()
return {1, held}
`)

// slotRefreshScript: KEYS[1] pool key; ARGV[1] holder, ARGV[2] TTL in ms.
// Returns 1 if extended, 0 if holder has no slot.
var slotRefreshScript = redis.NewScript(slotPrelude + `
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', string.format('%d', now + tonumber(ARGV[2])), ARGV[1])
expire()
return 1
`)

// slotReleaseScript: KEYS[1] pool key; ARGV[1] holder. Returns 1 if it held
// an unexpired slot (now freed), 0 otherwise.
var slotReleaseScript = redis.NewScript(slotPrelude + `
return redis.call('ZREM', KEYS[1], ARGV[1])
`)

// slotHoldersScript: KEYS[1] pool key. Read-only: unexpired holders by expiry.
var slotHoldersScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], string.format('(%d', now), '+inf')
`)

// Slot results, the values of the result label.
const resultFull = "full"

type slotsMetrics struct {
	acquired, full, failed prometheus.Counter
}

func newSlotsMetrics(reg prometheus.Registerer) *slotsMetrics {
	c := registerShared(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "node_healer_slots_total",
		Help: "Cluster-wide slot acquisitions by result (acquired, full, error).",
	}, []string{"result"}))
	return &slotsMetrics{
		acquired: c.WithLabelValues(resultAcquired),
		full:     c.WithLabelValues(resultFull),
		failed:   c.WithLabelValues(resultError),
	}
}
