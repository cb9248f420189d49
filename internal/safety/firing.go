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
// instead of rereading every alert on each question. Three keys, in one
// Redis Cluster slot (the hash tag of the last two is the first's name):
//
//	P:firing              hash fingerprint → "node|unix seconds last seen"
//	{P:firing}:nodes      hash node → number of its alerts in P:firing
//	{P:firing}:seen       sorted set fingerprint → last seen (expiry order)
//
// One Lua script updates all three atomically per payload. When the hash
// and the index disagree in size (the first use after an upgrade, or an
// older replica wrote the hash during a rolling update), the script
// rebuilds the counts from the hash before anything else.
type Firing struct {
	Redis  redis.UniversalClient
	Prefix string
	MaxAge time.Duration // default 6h
}

func (f *Firing) key() string { return f.Prefix + ":firing" }

// keys are the script's KEYS: the hash, the node counts, the index.
func (f *Firing) keys() []string {
	tag := "{" + f.key() + "}"
	return []string{f.key(), tag + ":nodes", tag + ":seen"}
}

func (f *Firing) maxAge() time.Duration {
	if f.MaxAge <= 0 {
		return 6 * time.Hour
	}
	return f.MaxAge
}

// expireBatch bounds how many aged-out alerts one call drops (the rest go
// on the next calls), so no call holds Redis long.
const expireBatch = 1000

// firingScript: KEYS as Firing.keys. ARGV[1] now (unix s), ARGV[2]
// cutoff (unix s: older entries expire), ARGV[3] 1 to return the firing
// nodes, ARGV[4] n firing alerts, then n (fingerprint, node) pairs, then
// resolved fingerprints. Returns {nodes with a firing alert, nodes that
// had none before this call, node names… (with ARGV[3] = 1)}.
var firingScript = redis.NewScript(`
local function nodeOf(v) return string.match(v, '^(.*)|') or v end
local function inc(node) return redis.call('HINCRBY', KEYS[2], node, 1) end
local function dec(node)
  if redis.call('HINCRBY', KEYS[2], node, -1) <= 0 then redis.call('HDEL', KEYS[2], node) end
end
local function drop(fp)
  local v = redis.call('HGET', KEYS[1], fp)
  if v then
    dec(nodeOf(v))
    redis.call('HDEL', KEYS[1], fp)
  end
  redis.call('ZREM', KEYS[3], fp)
end
if redis.call('HLEN', KEYS[1]) ~= redis.call('ZCARD', KEYS[3]) then
  redis.call('DEL', KEYS[2], KEYS[3])
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    local node, ts = string.match(all[i+1], '^(.*)|(%d*)$')
    if not node then node, ts = all[i+1], '0' end
    inc(node)
    redis.call('ZADD', KEYS[3], tonumber(ts) or 0, all[i])
  end
end
for _, fp in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[2], 'LIMIT', 0, ` + strconv.Itoa(expireBatch) + `)) do
  drop(fp)
end
local n = tonumber(ARGV[4])
for i = 5 + 2*n, #ARGV do drop(ARGV[i]) end
local newly = 0
for i = 5, 4 + 2*n, 2 do
  local fp, node = ARGV[i], ARGV[i+1]
  local v = redis.call('HGET', KEYS[1], fp)
  local was = v and nodeOf(v)
  if was ~= node then
    if was then dec(was) end
    if inc(node) == 1 then newly = newly + 1 end
  end
  redis.call('HSET', KEYS[1], fp, node .. '|' .. ARGV[1])
  redis.call('ZADD', KEYS[3], ARGV[1], fp)
end
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
