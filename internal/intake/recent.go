package intake

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// Recent lets a replica answer a payload it has just persisted, sent
// again, without sending it to Redis again. Alertmanager re-sends a
// group's alerts, firing and resolved, whenever the group changes and at
// every repeat_interval, and an HA pair of Alertmanagers sends each
// notification twice: most payloads at fleet scale are such re-sends, and
// each cost the full intake (a 100-alert Lua script: 1–2 ms of the one
// Redis thread) to learn that nothing changed.
//
// What it remembers, for TTL, is only what this replica itself saw Redis
// confirm: a run's dedupe key (the job is on the stream or was), an
// alert's node in the firing record, an alert's resolved record. A payload
// made only of those is answered after one small round trip — a GET of the
// epoch key — with what the full intake would answer (every run a
// duplicate). Anything else, and any doubt, takes the full path:
//
//   - the epoch key (a random value the full intake creates when missing)
//     is gone or different: Redis lost its data (FLUSHALL, a restart
//     without persistence);
//   - this replica opened a connection to Redis since it confirmed the
//     alerts: the server may be another one (a Sentinel failover) or the
//     same one restarted from an older snapshot, which keeps the epoch but
//     not the last writes (TestRecentAfterRestartFromSnapshot);
//   - the memory is older than TTL, or larger than MaxEntries.
//
// What a re-send would otherwise refresh waits for the next full path at
// most TTL later: a firing alert's last-seen time (rewritten only every
// MaxAge/12 anyway) and the expiry of the dedupe and resolved keys (hours).
// Redis Cluster clients are not supported (connections per node): with
// them every payload takes the full path.
type Recent struct {
	rdb    redis.UniversalClient
	key    string
	ttl    time.Duration
	maxLen int

	dials atomic.Uint64 // connections opened to Redis
	hits  atomic.Uint64

	mu    sync.Mutex
	epoch string
	dial  uint64               // dials when the entries were confirmed
	seen  map[string]time.Time // what was confirmed, when
}

// RecentTTL is how long a confirmed alert is remembered.
const RecentTTL = 30 * time.Second

// recentMax bounds the memory (entries: a run, a resolved alert).
const recentMax = 200_000

// NewRecent remembers what the intake confirms on client rdb, under key
// prefix. nil for a Cluster client (not supported).
func NewRecent(rdb redis.UniversalClient, prefix string) *Recent {
	c, ok := rdb.(*redis.Client)
	if !ok {
		return nil
	}
	r := &Recent{rdb: rdb, key: prefix + ":epoch", ttl: RecentTTL, maxLen: recentMax, seen: map[string]time.Time{}}
	c.AddHook(dialCounter{&r.dials})
	return r
}

// Hits is the number of payloads answered from memory.
func (r *Recent) Hits() uint64 { return r.hits.Load() }

type dialCounter struct{ n *atomic.Uint64 }

func (d dialCounter) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		// Counted before the dial: a connection being opened makes every
		// confirmation from here on suspect until the next full path.
		d.n.Add(1)
		return next(ctx, network, addr)
	}
}
func (d dialCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (d dialCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func firingKey(r *runbooks.Request) string {
	return "f\x00" + r.RunID + "\x00" + r.Fingerprint + "\x00" + r.Node
}

func resolvedKey(fp string, endsAt time.Time) string {
	return "r\x00" + fp + "\x00" + strconv.FormatInt(endsAt.UnixNano(), 10)
}

// known reports whether every part of a payload was confirmed within TTL
// at the current connection count, and the epoch it was confirmed at.
func (r *Recent) known(reqs []runbooks.Request, firing map[string]string, resolvedAt map[string]time.Time, now time.Time) (string, bool) {
	if len(reqs) != len(firing) || len(reqs)+len(resolvedAt) == 0 {
		return "", false // firing alerts without runs: not a payload the handler sends
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.epoch == "" || r.dial != r.dials.Load() {
		return "", false
	}
	fresh := func(k string) bool {
		at, ok := r.seen[k]
		return ok && now.Sub(at) < r.ttl
	}
	for i := range reqs {
		if firing[reqs[i].Fingerprint] != reqs[i].Node || !fresh(firingKey(&reqs[i])) {
			return "", false
		}
	}
	for fp, end := range resolvedAt {
		if !fresh(resolvedKey(fp, end)) {
			return "", false
		}
	}
	return r.epoch, true
}

// confirm remembers a payload the full intake persisted, at epoch, if no
// connection was opened since dials0 (read before the intake was sent).
func (r *Recent) confirm(reqs []runbooks.Request, resolvedAt map[string]time.Time, epoch string, dials0 uint64, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if epoch == "" || r.dials.Load() != dials0 {
		r.epoch, r.seen = "", map[string]time.Time{}
		return
	}
	if epoch != r.epoch || dials0 != r.dial || len(r.seen) > r.maxLen {
		r.epoch, r.dial, r.seen = epoch, dials0, map[string]time.Time{}
	}
	for i := range reqs {
		r.seen[firingKey(&reqs[i])] = now
	}
	for fp, end := range resolvedAt {
		r.seen[resolvedKey(fp, end)] = now
	}
}

// epochIn queues, on the intake's pipeline, the epoch's creation when
// missing and its read.
func (r *Recent) epochIn(ctx context.Context, p redis.Pipeliner) *redis.StringCmd {
	p.SetNX(ctx, r.key, newEpoch(), 0)
	return p.Get(ctx, r.key)
}

// current reads the epoch (the fast path's one round trip); "" when none.
func (r *Recent) current(ctx context.Context) (string, error) {
	s, err := r.rdb.Get(ctx, r.key).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return s, err
}

func newEpoch() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
