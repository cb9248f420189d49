package safety

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/runbooks"
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
	// GroupBy is the node label the breaker also applies per value of
	// (safety.breaker.group_by, e.g. topology.kubernetes.io/zone).
	GroupBy string       `json:"groupBy,omitempty"`
	Groups  []GroupState `json:"groups,omitempty"`
}

// GroupState is the breaker of one failure domain: the nodes sharing a
// value of the group_by label (nodes without it form the group "").
type GroupState struct {
	Value     string    `json:"value"`
	Open      bool      `json:"open"`
	Unhealthy int       `json:"unhealthy"`
	Total     int       `json:"total"`
	Since     time.Time `json:"since,omitzero"`
}

// OpenGroup returns the open group a node with these labels is in.
func (st BreakerState) OpenGroup(labels map[string]string) (GroupState, bool) {
	if st.GroupBy == "" {
		return GroupState{}, false
	}
	v := labels[st.GroupBy]
	for _, g := range st.Groups {
		if g.Value == v && g.Open {
			return g, true
		}
	}
	return GroupState{}, false
}

// Breaker counts unhealthy nodes — NotReady, with a firing node-healer
// alert, under remediation, or escalated and not yet cleared by a human
// (label node-healer.io/needs-attention) — and opens above the threshold,
// cluster-wide and, with GroupBy, per failure domain. It closes
// only after the count stayed under the threshold for the hold period.
// Its state lives in Redis, so every replica agrees.
type Breaker struct {
	g *Gate

	mu     sync.Mutex
	last   BreakerState
	lastAt time.Time

	kick chan struct{}
}

// Kick asks for an evaluation now instead of at the next tick (the
// webhook kicks when an alert arrives for a node that had none firing, so
// a storm opens the breaker as it arrives). It never blocks; kicks
// before the evaluation ran coalesce.
func (b *Breaker) Kick() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// Kicked delivers the kicks to whoever evaluates the breaker.
func (b *Breaker) Kicked() <-chan struct{} { return b.kick }

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
	for _, n := range nodes {
		if n.Labels[runbooks.LabelNeedsAttention] != "" {
			bad[n.Name] = true
		}
	}
	st := BreakerState{Unhealthy: len(bad), Total: len(nodes), Threshold: b.threshold(), GroupBy: b.g.L.BreakerGroupBy}
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
	if st.GroupBy != "" {
		if st.Groups, err = b.evaluateGroups(ctx, nodes, bad); err != nil {
			return BreakerState{}, err
		}
	}
	b.mu.Lock()
	b.last, b.lastAt = st, time.Now()
	b.mu.Unlock()
	if st.Open && over == "0" {
		// Closing: still open until the hold passes.
		st.Threshold += fmt.Sprintf(" (under it since %s; closes after %s)", st.BelowSince.Format(time.RFC3339), b.g.L.BreakerHold)
	}
	return st, nil
}

// evaluateGroups applies the threshold to each value of the group_by
// label, each group with its own state (and hold) in Redis.
func (b *Breaker) evaluateGroups(ctx context.Context, nodes []NodeInfo, bad map[string]bool) ([]GroupState, error) {
	type count struct{ unhealthy, total int }
	groups := map[string]*count{}
	for _, n := range nodes {
		v := n.Labels[b.g.L.BreakerGroupBy]
		c := groups[v]
		if c == nil {
			c = &count{}
			groups[v] = c
		}
		c.total++
		if bad[n.Name] {
			c.unhealthy++
		}
	}
	values := make([]string, 0, len(groups))
	for v := range groups {
		values = append(values, v)
	}
	sort.Strings(values)
	out := make([]GroupState, 0, len(values))
	for _, v := range values {
		c := groups[v]
		over := "0"
		if b.over(c.unhealthy, c.total) {
			over = "1"
		}
		res, err := breakerScript.Run(ctx, b.g.Redis, []string{b.groupKey(v)}, over, b.g.L.BreakerHold.Milliseconds(), c.unhealthy, c.total).Int64Slice()
		if err != nil {
			return nil, fmt.Errorf("breaker of %s=%q: %w", b.g.L.BreakerGroupBy, v, err)
		}
		out = append(out, GroupState{Value: v, Open: res[0] == 1, Unhealthy: c.unhealthy, Total: c.total, Since: msTime(res[1])})
	}
	// What status shows, and what a group that has no nodes any more
	// leaves behind, is this list.
	js, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	if err := b.g.Redis.HSet(ctx, b.key(), "groups", js).Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// groupKey is one key per group; each script call touches one key, so
// Redis Cluster may place them anywhere.
func (b *Breaker) groupKey(value string) string {
	return b.key() + ":group:" + value
}

// State reads the last evaluated state without evaluating.
func (b *Breaker) State(ctx context.Context) (BreakerState, error) {
	m, err := b.g.Redis.HGetAll(ctx, b.key()).Result()
	if err != nil {
		return BreakerState{}, err
	}
	num := func(k string) int64 { v, _ := strconv.ParseInt(m[k], 10, 64); return v }
	st := BreakerState{Open: m["open"] == "1", Unhealthy: int(num("unhealthy")), Total: int(num("total")), Threshold: b.threshold(),
		Since: msTime(num("since")), BelowSince: msTime(num("below")), Evaluated: msTime(num("evaluated")), GroupBy: b.g.L.BreakerGroupBy}
	if g := m["groups"]; g != "" && st.GroupBy != "" {
		_ = json.Unmarshal([]byte(g), &st.Groups)
	}
	return st, nil
}

func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
