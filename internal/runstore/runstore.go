// Package runstore keeps runs (state and timeline) in Redis: one JSON
// value per run, expiring after the retention period, and a sorted set
// indexing them by creation time for listing.
//
// Every write is a compare-and-set on the run's fence (one Lua script): a
// writer whose fence is lower than the stored one — a replica that woke up
// after another took the node's lease over — is refused with
// runbooks.ErrStaleWrite, logged and counted in
// node_healer_stale_writes_total. A final record is never rewritten.
//
// # Keys
//
// Every key of the store carries the hash tag {P} (P the prefix), so the
// save script, which touches a record, its fence and the index together,
// and the MGETs of List and Active stay in one Redis Cluster slot:
//
//	{P}:run:ID        the run, JSON, expiring after the retention period
//	{P}:run:ID:fence  hash {fence, final} of the last write; same expiry
//	{P}:runs          sorted set of run IDs by creation time (ms)
//
// Before Redis Cluster support they were P:run:ID, P:run:ID:fence and
// P:runs: runs stored under those names are not read after an upgrade.
package runstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/redisconn"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// Store implements runbooks.Store.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
	log    *slog.Logger
	stale  prometheus.Counter
	o      Options
}

// Options are the store's optional outputs.
type Options struct {
	Log        *slog.Logger          // refused writes are logged here
	Registerer prometheus.Registerer // node_healer_stale_writes_total
	// MinReplicas > 0: SaveReplicated waits for that many replicas (WAIT),
	// at most ReplicationTimeout (default 500ms). Not for Cluster.
	MinReplicas        int
	ReplicationTimeout time.Duration
}

var _ runbooks.Store = (*Store)(nil)

// New returns a store using keys under {prefix} (prefix must not contain
// '{' or '}'); runs are kept for ttl.
func New(rdb redis.UniversalClient, prefix string, ttl time.Duration, opts ...Options) *Store {
	if ttl == 0 {
		ttl = 7 * 24 * time.Hour
	}
	var o Options
	if len(opts) > 0 {
		o = opts[len(opts)-1]
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.ReplicationTimeout <= 0 {
		o.ReplicationTimeout = 500 * time.Millisecond
	}
	stale := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "node_healer_stale_writes_total",
		Help: "Run-state writes refused because the record had a newer fence (a stale lease holder) or was already final.",
	})
	if o.Registerer != nil {
		o.Registerer.MustRegister(stale)
	}
	// One hash tag for every key: see Keys in the package documentation.
	return &Store{rdb: rdb, prefix: "{" + prefix + "}", ttl: ttl, log: o.Log, stale: stale, o: o}
}

func (s *Store) key(id string) string   { return s.prefix + ":run:" + id }
func (s *Store) fence(id string) string { return s.prefix + ":run:" + id + ":fence" }
func (s *Store) index() string          { return s.prefix + ":runs" }

// saveScript: every key it touches is in KEYS, all with the same hash tag.
// KEYS[1] run record, KEYS[2] its fence hash {fence, final},
// KEYS[3] the index. ARGV[1] record JSON, ARGV[2] the writer's fence,
// ARGV[3] 1 if the record is final, ARGV[4] TTL ms, ARGV[5] index score,
// ARGV[6] run ID, ARGV[7] index cutoff. Returns {1, stored fence, 0} on a
// write, {0, stored fence, final} when refused.
var saveScript = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[2], 'fence', 'final')
local stored = tonumber(cur[1]) or 0
if cur[2] == '1' then return {0, stored, 1} end
if tonumber(ARGV[2]) < stored then return {0, stored, 0} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
redis.call('HSET', KEYS[2], 'fence', ARGV[2], 'final', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[7])
return {1, stored, 0}
`)

// Save writes the run and indexes it, if r.Fence is at least the stored
// fence and the stored record is not final; otherwise nothing is written
// and the error wraps runbooks.ErrStaleWrite.
func (s *Store) Save(ctx context.Context, r *runbooks.Run) error {
	return s.save(ctx, r, false)
}

// SaveReplicated is Save, then — with Options.MinReplicas > 0 — waits
// (Redis WAIT on the same connection, at most ReplicationTimeout) until
// that many replicas acknowledged it; fewer: the error wraps
// runbooks.ErrNotReplicated (the write is on the primary but a failover
// could lose it). The executor uses it for decisions taken before a reset.
func (s *Store) SaveReplicated(ctx context.Context, r *runbooks.Run) error {
	return s.save(ctx, r, s.o.MinReplicas > 0)
}

func (s *Store) save(ctx context.Context, r *runbooks.Run, replicated bool) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	final := 0
	if r.Status.Final() {
		final = 1
	}
	keys := []string{s.key(r.ID), s.fence(r.ID), s.index()}
	args := []any{b, r.Fence, final, s.ttl.Milliseconds(), r.Created.UnixMilli(), r.ID, time.Now().Add(-s.ttl).UnixMilli()}
	var v []int64
	acked := int64(-1)
	if replicated {
		var eval *redis.Cmd
		eval, acked, err = redisconn.EvalWait(ctx, s.rdb, saveScript, keys, args, s.o.MinReplicas, s.o.ReplicationTimeout, nil)
		if err == nil {
			v, err = eval.Int64Slice()
		}
	} else {
		v, err = saveScript.Run(ctx, s.rdb, keys, args...).Int64Slice()
	}
	if err != nil {
		return err
	}
	if len(v) != 3 {
		return fmt.Errorf("save run %s: unexpected reply %v", r.ID, v)
	}
	if v[0] == 1 {
		if acked >= 0 && acked < int64(s.o.MinReplicas) {
			s.log.Warn("a run's decision was not acknowledged by enough Redis replicas in time; it is not acted on",
				"run", r.ID, "node", r.Node, "acked", acked, "want", s.o.MinReplicas, "timeout", s.o.ReplicationTimeout)
			return fmt.Errorf("run %s: %d of %d replicas acknowledged within %s: %w", r.ID, acked, s.o.MinReplicas, s.o.ReplicationTimeout, runbooks.ErrNotReplicated)
		}
		return nil
	}
	s.stale.Inc()
	why := fmt.Sprintf("stored fence %d is newer than the writer's %d", v[1], r.Fence)
	if v[2] == 1 {
		why = fmt.Sprintf("the stored record (fence %d) is final", v[1])
	}
	s.log.Warn("refused a stale write of a run: another lease holder wrote it since; this writer stops",
		"run", r.ID, "node", r.Node, "fence", r.Fence, "stored_fence", v[1], "status", r.Status, "reason", why)
	return fmt.Errorf("run %s: %s: %w", r.ID, why, runbooks.ErrStaleWrite)
}

// Load reads a run; runbooks.ErrRunNotFound when there is none.
func (s *Store) Load(ctx context.Context, id string) (*runbooks.Run, error) {
	b, err := s.rdb.Get(ctx, s.key(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%w: %s", runbooks.ErrRunNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	r := &runbooks.Run{}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("run %s: corrupt record: %w", id, err)
	}
	return r, nil
}

// List returns up to limit runs, newest first.
func (s *Store) List(ctx context.Context, limit int) ([]*runbooks.Run, error) {
	raws, err := s.ListJSON(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]*runbooks.Run, 0, len(raws))
	for _, b := range raws {
		r := &runbooks.Run{}
		if json.Unmarshal(b, r) == nil {
			out = append(out, r)
		}
	}
	return out, nil
}

// ListJSON returns up to limit runs, newest first, as stored: each one
// run's JSON object, checked to be valid JSON (jsontext: several times
// faster than encoding/json's check) but not decoded. The API's
// run list answers with them as they are — decoding every record and
// encoding it again was ≈ 15 ms of CPU and 6 MB of garbage for 400 runs
// (BenchmarkList400), per request of a dashboard, on the replica that
// also answers the webhook.
func (s *Store) ListJSON(ctx context.Context, limit int) ([]json.RawMessage, error) {
	ids, err := s.rdb.ZRevRange(ctx, s.index(), 0, int64(limit)-1).Result()
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.key(id)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, err
	}
	out := make([]json.RawMessage, 0, len(vals))
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue // expired between the two reads
		}
		b := []byte(str)
		if len(b) == 0 || b[0] != '{' || !jsontext.Value(b).IsValid() {
			s.log.Warn("skipped a corrupt run record in the run list", "run", ids[i], "bytes", len(b))
			continue
		}
		out = append(out, b)
	}
	return out, nil
}
