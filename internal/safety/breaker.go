package safety

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// BreakerState is the blast-radius breaker as last evaluated.
type BreakerState struct {
	Open       bool      `json:"open"`
	Unhealthy  int       `json:"unhealthy"`
	Total      int       `json:"total"`
	Threshold  string    `json:"threshold"`
	Since      time.Time `json:"since,omitzero"`      // opened at (open) or closed at
	BelowSince time.Time `json:"belowSince,omitzero"` // under the threshold since (open, closing)
	Evaluated  time.Time `json:"evaluated"`
}

// Breaker counts unhealthy nodes — NotReady, with a firing node-healer
// alert, or under remediation — and opens above the threshold. It closes
// only after the count stayed under the threshold for the hold period.
// Its state lives in Redis, so every replica agrees.
type Breaker struct {
	g *Gate

	mu     sync.Mutex
	last   BreakerState
	lastAt time.Time
}

// breakerCacheTTL bounds how often admits recount (a storm of admits must
// not each read every firing alert); settle time covers the staleness.
const breakerCacheTTL = time.Second

// EvaluateCached is Evaluate, reusing an evaluation younger than a second.
func (b *Breaker) EvaluateCached(ctx context.Context, nodes []NodeInfo) (BreakerState, error) {
	b.mu.Lock()
	if time.Since(b.lastAt) < breakerCacheTTL {
		st := b.last
		b.mu.Unlock()
		return st, nil
	}
	b.mu.Unlock()
	return b.Evaluate(ctx, nodes)
}

// breakerScript updates the state on Redis time.
// KEYS[1] state hash; ARGV: over (0|1), hold ms, unhealthy, total.
var breakerScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local open = tonumber(redis.call('HGET', KEYS[1], 'open') or '0')
local since = tonumber(redis.call('HGET', KEYS[1], 'since') or '0')
local below = tonumber(redis.call('HGET', KEYS[1], 'below') or '0')
if ARGV[1] == '1' then
  if open == 0 then open = 1; since = now end
  below = 0
elseif open == 1 then
  if below == 0 then below = now end
  if now - below >= tonumber(ARGV[2]) then open = 0; since = now; below = 0 end
end
redis.call('HSET', KEYS[1], 'open', open, 'since', since, 'below', below, 'unhealthy', ARGV[3], 'total', ARGV[4], 'evaluated', now)
return {open, since, below, now}`)

func (b *Breaker) key() string { return b.g.Prefix + ":breaker" }

func (b *Breaker) threshold() string {
	switch {
	case b.g.L.BreakerPercent > 0 && b.g.L.BreakerNodes > 0:
		return fmt.Sprintf("%g%% or %d nodes", b.g.L.BreakerPercent, b.g.L.BreakerNodes)
	case b.g.L.BreakerPercent > 0:
		return fmt.Sprintf("%g%%", b.g.L.BreakerPercent)
	case b.g.L.BreakerNodes > 0:
		return fmt.Sprintf("%d nodes", b.g.L.BreakerNodes)
	}
	return "off"
}

// over reports whether unhealthy of total crosses the threshold. Fewer
// than BreakerMinNodes unhealthy nodes never open it (one broken node in a
// small cluster is what node-healer is for).
func (b *Breaker) over(unhealthy, total int) bool {
	if unhealthy < b.g.L.BreakerMinNodes {
		return false
	}
	if b.g.L.BreakerNodes > 0 && unhealthy > b.g.L.BreakerNodes {
		return true
	}
	return b.g.L.BreakerPercent > 0 && total > 0 && float64(unhealthy)*100 > b.g.L.BreakerPercent*float64(total)
}

// Evaluate counts unhealthy nodes now and updates the shared state.
func (b *Breaker) Evaluate(ctx context.Context, nodes []NodeInfo) (BreakerState, error) {
	bad := map[string]bool{}
	for _, n := range nodes {
		if !n.Ready {
			bad[n.Name] = true
		}
	}
	if b.g.Firing != nil {
		firing, err := b.g.Firing.Nodes(ctx)
		if err != nil {
			return BreakerState{}, fmt.Errorf("firing alerts: %w", err)
		}
		for _, n := range firing {
			bad[n] = true
		}
	}
	active, err := b.g.Slots.Holders(ctx, poolRuns)
	if err != nil {
		return BreakerState{}, fmt.Errorf("active runs: %w", err)
	}
	for _, n := range nodesOfHolders(active) {
		bad[n] = true
	}
	st := BreakerState{Unhealthy: len(bad), Total: len(nodes), Threshold: b.threshold()}
	over := "0"
	if b.over(st.Unhealthy, st.Total) {
		over = "1"
	}
	res, err := breakerScript.Run(ctx, b.g.Redis, []string{b.key()}, over, b.g.L.BreakerHold.Milliseconds(), st.Unhealthy, st.Total).Int64Slice()
	if err != nil {
		return BreakerState{}, err
	}
	st.Open = res[0] == 1
	st.Since = msTime(res[1])
	st.BelowSince = msTime(res[2])
	st.Evaluated = msTime(res[3])
	b.mu.Lock()
	b.last, b.lastAt = st, time.Now()
	b.mu.Unlock()
	if st.Open && over == "0" {
		// Closing: still open until the hold passes.
		st.Threshold += fmt.Sprintf(" (under it since %s; closes after %s)", st.BelowSince.Format(time.RFC3339), b.g.L.BreakerHold)
	}
	return st, nil
}

// State reads the last evaluated state without evaluating.
func (b *Breaker) State(ctx context.Context) (BreakerState, error) {
	m, err := b.g.Redis.HGetAll(ctx, b.key()).Result()
	if err != nil {
		return BreakerState{}, err
	}
	num := func(k string) int64 { v, _ := strconv.ParseInt(m[k], 10, 64); return v }
	return BreakerState{Open: m["open"] == "1", Unhealthy: int(num("unhealthy")), Total: int(num("total")), Threshold: b.threshold(),
		Since: msTime(num("since")), BelowSince: msTime(num("below")), Evaluated: msTime(num("evaluated"))}, nil
}

func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
