package safety

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Firing remembers which nodes have firing node-healer alerts (the
// webhook records them), for the breaker. An alert counts until its
// resolved notification arrives, or for MaxAge without a new
// notification (Alertmanager re-sends firing alerts every repeat_interval).
//
// The breaker asks which nodes have a firing alert, not which alerts
// fire, so the record keeps the answer up to date as alerts come and go
// instead of rereading every alert on each question. Four keys, in one
// Redis Cluster slot (the hash tag of the last three is the first's name):
//
//	P:firing              hash fingerprint → "node|unix seconds last seen"
//	{P:firing}:nodes      hash node → number of its alerts in P:firing
//	{P:firing}:len        the size of P:firing when the script last ran
//	{P:firing}:cursor     where the expiry sweep (HSCAN) goes on
//
// One Lua script updates them per payload, with a constant number of
// commands plus one per node whose count changes. When P:firing's size is
// not what the script left (the first use after an upgrade, or an older
// replica wrote the hash during a rolling update), it rebuilds the counts
// from the hash first. Alerts not re-sent within MaxAge are dropped by a
// sweep that reads 200 entries per breaker evaluation (every few seconds
// on each replica), so a lost resolved notification stops counting some
// time after MaxAge rather than exactly at it; for the same reason a
// re-sent alert's last-seen time is rewritten only once it is older than
// MaxAge/12 (most payloads re-send alerts: they then write nothing).
type Firing struct {
	Redis  redis.UniversalClient
	Prefix string
	MaxAge time.Duration // default 6h
}

func (f *Firing) key() string { return f.Prefix + ":firing" }

// keys are the script's KEYS: the hash, the node counts, its size, the
// sweep's cursor.
func (f *Firing) keys() []string {
	tag := "{" + f.key() + "}"
	return []string{f.key(), tag + ":nodes", tag + ":len", tag + ":cursor"}
}

func (f *Firing) maxAge() time.Duration {
	if f.MaxAge <= 0 {
		return 6 * time.Hour
	}
	return f.MaxAge
}

// sweepBatch is how many entries one sweep step reads (HSCAN COUNT).
const sweepBatch = 200

// firingScript: KEYS as Firing.keys. ARGV[1] now (unix s), ARGV[2]
// cutoff (unix s: older entries expire), ARGV[3] 1 to sweep a step and
// return the firing nodes, ARGV[4] n firing alerts, then n (fingerprint,
// node) pairs, then resolved fingerprints. Returns {nodes with a firing
// alert, nodes that had none before this call, node names… (with
// ARGV[3] = 1)}.
var firingScript = redis.NewScript(`
local function nodeOf(v) return string.match(v, '^(.*)|') or v end
-- call runs cmd on KEYS[1] with list's items as arguments, at most 1000 at
-- a time (Lua's unpack has a limit), and returns the replies joined.
local function call(cmd, list)
  local out = {}
  for i = 1, #list, 1000 do
    local r = redis.call(cmd, KEYS[1], unpack(list, i, math.min(i + 999, #list)))
    if type(r) == 'table' then for _, v in ipairs(r) do out[#out+1] = v end end
  end
  return out
end
local delta, drop, dropping = {}, {}, {}
local function add(node, d) delta[node] = (delta[node] or 0) + d end
local function forget(fp)
  if not dropping[fp] then dropping[fp] = true; drop[#drop+1] = fp end
end
if tonumber(redis.call('GET', KEYS[3]) or '0') ~= redis.call('HLEN', KEYS[1]) then
  redis.call('DEL', KEYS[2])
  local all = redis.call('HGETALL', KEYS[1])
  for i = 2, #all, 2 do add(nodeOf(all[i]), 1) end
  for node, d in pairs(delta) do redis.call('HSET', KEYS[2], node, d) end
  delta = {}
end
if ARGV[3] == '1' then
  local r = redis.call('HSCAN', KEYS[1], redis.call('GET', KEYS[4]) or '0', 'COUNT', ` + strconv.Itoa(sweepBatch) + `)
  redis.call('SET', KEYS[4], r[1])
  local cutoff = tonumber(ARGV[2])
  for i = 1, #r[2], 2 do
    local ts = tonumber(string.match(r[2][i+1], '|(%d+)$') or '0')
    if ts < cutoff then forget(r[2][i]) end
  end
end
local n = tonumber(ARGV[4])
for i = 5 + 2*n, #ARGV do forget(ARGV[i]) end
if #drop > 0 then
  local old = call('HMGET', drop)
  for i, v in ipairs(old) do
    if v then add(nodeOf(v), -1) end
  end
  call('HDEL', drop)
end
if n > 0 then
  -- A re-sent alert on the same node is rewritten only when its last-seen
  -- time is older than a twelfth of MaxAge (expiry needs no finer clock).
  local now = tonumber(ARGV[1])
  local fresh = now - math.floor((now - tonumber(ARGV[2])) / 12)
  local fps, set = {}, {}
  for i = 5, 4 + 2*n, 2 do fps[#fps+1] = ARGV[i] end
  local old = call('HMGET', fps)
  for i, v in ipairs(old) do
    local fp, node = ARGV[3 + 2*i], ARGV[4 + 2*i]
    local was, ts
    if v then was, ts = string.match(v, '^(.*)|(%d*)$') end
    if v and not was then was = v end
    if was ~= node or (tonumber(ts) or 0) < fresh then
      if was ~= node then
        if was then add(was, -1) end
        add(node, 1)
      end
      set[#set+1] = fp
      set[#set+1] = node .. '|' .. ARGV[1]
    end
  end
  if #set > 0 then call('HSET', set) end
end
local newly = 0
for node, d in pairs(delta) do
  if d ~= 0 then
    local c = redis.call('HINCRBY', KEYS[2], node, d)
    if c <= 0 then redis.call('HDEL', KEYS[2], node) elseif c == d then newly = newly + 1 end
  end
end
redis.call('SET', KEYS[3], redis.call('HLEN', KEYS[1]))
local out = {redis.call('HLEN', KEYS[2]), newly}
if ARGV[3] == '1' then
  for _, node in ipairs(redis.call('HKEYS', KEYS[2])) do out[#out+1] = node end
end
return out`)

// FiringResult is what a record changed.
type FiringResult struct {
	Nodes int // nodes with a firing alert now
	New   int // of them, nodes that had none before
}

// args builds the script's ARGV.
func (f *Firing) args(firing map[string]string, resolved []string, list bool) []any {
	now := time.Now()
	l := "0"
	if list {
		l = "1"
	}
	args := make([]any, 0, 4+2*len(firing)+len(resolved))
	args = append(args, now.Unix(), now.Add(-f.maxAge()).Unix(), l, len(firing))
	for fp, node := range firing {
		args = append(args, fp, node)
	}
	for _, fp := range resolved {
		args = append(args, fp)
	}
	return args
}

// RecordIn queues the record of firing alerts (fingerprint → node) and
// the forgetting of resolved ones (fingerprints) on pipeline p, so a
// caller can send it with its other writes in one round trip; the
// returned function reads the outcome once p ran.
func (f *Firing) RecordIn(ctx context.Context, p redis.Pipeliner, firing map[string]string, resolved []string) func() (FiringResult, error) {
	cmd := firingScript.Eval(ctx, p, f.keys(), f.args(firing, resolved, false)...)
	return func() (FiringResult, error) { return firingResult(cmd) }
}

func firingResult(cmd *redis.Cmd) (FiringResult, error) {
	v, err := cmd.Int64Slice()
	if err != nil {
		return FiringResult{}, fmt.Errorf("firing alerts: %w", err)
	}
	if len(v) < 2 {
		return FiringResult{}, fmt.Errorf("firing alerts: unexpected reply %v", v)
	}
	return FiringResult{Nodes: int(v[0]), New: int(v[1])}, nil
}

// Record notes firing alerts (fingerprint → node) and forgets resolved
// ones (fingerprints), in one round trip.
func (f *Firing) Record(ctx context.Context, firing map[string]string, resolved []string) error {
	if len(firing) == 0 && len(resolved) == 0 {
		return nil
	}
	_, err := firingResult(firingScript.Run(ctx, f.Redis, f.keys(), f.args(firing, resolved, false)...))
	return err
}

// Nodes lists nodes with a firing alert seen within MaxAge (reading the
// counts, not the alerts); aged-out alerts are dropped first.
func (f *Firing) Nodes(ctx context.Context) ([]string, error) {
	v, err := firingScript.Run(ctx, f.Redis, f.keys(), f.args(nil, nil, true)...).Slice()
	if err != nil {
		return nil, err
	}
	if len(v) < 2 {
		return nil, fmt.Errorf("firing alerts: unexpected reply %v", v)
	}
	out := make([]string, 0, len(v)-2)
	for _, x := range v[2:] {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out, nil
}
