// Package queue is the durable hand-off between the webhook and the
// workers: a Redis stream read through a consumer group.
//
// Enqueue is idempotent on (fingerprint, startsAt): a Lua script sets a
// dedupe key with NX and appends to the stream only when it was new, so
// Alertmanager retries and HA Alertmanager pairs start one run. Entries a
// dead consumer left pending are claimed by another with XAUTOCLAIM once
// they have been idle longer than ClaimAfter; a live worker keeps its
// entry fresh with Touch while the run goes on.
//
// # Keys
//
// Every key carries the hash tag {P} (P the prefix), so the enqueue and
// requeue scripts, which touch the stream and dedupe keys together, stay
// in one Redis Cluster slot:
//
//	{P}:alerts         the stream (field "job": the job's JSON), group "workers"
//	{P}:dedupe:RUN     the run ID of an accepted alert identity; DedupeTTL
//	{P}:resolved:FP    endsAt of a resolved alert, by fingerprint; DedupeTTL
package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/redisconn"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// Job is one accepted alert: a run to start.
type Job = runbooks.Request

// Delivery is a job read from the stream.
type Delivery struct {
	ID      string // stream entry ID
	Job     Job
	Claimed bool // taken over from another consumer
	Retries int  // in-place retries after a short deferral
}

// Queue is the stream and its consumer group.
type Queue struct {
	rdb        redis.UniversalClient
	stream     string
	group      string
	prefix     string
	dedupeTTL  time.Duration
	claimAfter time.Duration
	o          Options
}

// Options configures a Queue.
type Options struct {
	Prefix     string        // key prefix, e.g. "node-healer"
	DedupeTTL  time.Duration // how long an alert identity is remembered
	ClaimAfter time.Duration // idle time after which a pending entry is claimed
	// MinReplicas > 0: Enqueue returns only once that many replicas
	// acknowledged the entries (Redis WAIT on the same connection, at most
	// ReplicationTimeout, default 500ms), else ErrNotReplicated (the
	// webhook answers 503 and Alertmanager retries). Not for Cluster.
	MinReplicas        int
	ReplicationTimeout time.Duration
}

// ErrNotReplicated: the entries were written on the primary but fewer
// replicas than Options.MinReplicas acknowledged them in time; a failover
// could lose them, so the caller must not confirm them (503).
var ErrNotReplicated = errors.New("queue: not acknowledged by enough replicas")

// New returns a Queue on rdb.
func New(rdb redis.UniversalClient, o Options) *Queue {
	if o.Prefix == "" {
		o.Prefix = "node-healer"
	}
	if o.DedupeTTL == 0 {
		o.DedupeTTL = 24 * time.Hour
	}
	if o.ClaimAfter == 0 {
		o.ClaimAfter = time.Minute
	}
	if o.ReplicationTimeout <= 0 {
		o.ReplicationTimeout = 500 * time.Millisecond
	}
	// One hash tag for every queue key: the enqueue script touches the
	// stream and the dedupe keys together (one slot on Redis Cluster).
	tag := "{" + o.Prefix + "}"
	return &Queue{rdb: rdb, stream: tag + ":alerts", group: "workers", prefix: tag,
		dedupeTTL: o.DedupeTTL, claimAfter: o.ClaimAfter, o: o}
}

// Stream is the stream's key.
func (q *Queue) Stream() string { return q.stream }

// enqueueScript adds every job whose dedupe key is new, in one call.
// KEYS: stream, dedupe keys…; ARGV: ttl ms, then (run ID, job JSON) pairs.
var enqueueScript = redis.NewScript(`
local added = {}
for i = 2, #KEYS do
  local id, job = ARGV[2*i-2], ARGV[2*i-1]
  if redis.call('SET', KEYS[i], id, 'NX', 'PX', ARGV[1]) then
    redis.call('XADD', KEYS[1], '*', 'job', job)
    added[#added+1] = 1
  else
    added[#added+1] = 0
  end
end
return added`)

// Enqueue persists jobs in one round trip and one script call. added[i]
// is false when job i was a duplicate of one already enqueued. Any error
// means none of the results can be trusted and the caller must report
// failure (503) so that Alertmanager retries.
func (q *Queue) Enqueue(ctx context.Context, jobs []Job) (added []bool, err error) {
	if len(jobs) == 0 {
		return nil, nil
	}
	keys := make([]string, 1, len(jobs)+1)
	keys[0] = q.stream
	args := make([]any, 1, 2*len(jobs)+1)
	args[0] = q.dedupeTTL.Milliseconds()
	for i := range jobs {
		b, err := json.Marshal(&jobs[i])
		if err != nil {
			return nil, err
		}
		keys = append(keys, q.prefix+":dedupe:"+jobs[i].RunID)
		args = append(args, jobs[i].RunID, b)
	}
	var res []int64
	if q.o.MinReplicas > 0 {
		res, err = q.enqueueReplicated(ctx, keys, args)
	} else {
		res, err = enqueueScript.Run(ctx, q.rdb, keys, args...).Int64Slice()
	}
	if err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	if len(res) != len(jobs) {
		return nil, fmt.Errorf("enqueue: %d results for %d jobs", len(res), len(jobs))
	}
	added = make([]bool, len(jobs))
	for i, n := range res {
		added[i] = n == 1
	}
	return added, nil
}

// enqueueReplicated runs the enqueue script, a write to a probe key and
// WAIT in one pipeline (one connection: WAIT covers that connection's
// writes). The probe write moves the connection's replication offset to
// now, so a retried payload whose entries are all duplicates still waits
// for the original entries to reach the replicas.
func (q *Queue) enqueueReplicated(ctx context.Context, keys []string, args []any) ([]int64, error) {
	probe := func(p redis.Pipeliner) { p.Set(ctx, q.prefix+":wait-probe", "1", time.Minute) }
	eval, acked, err := redisconn.EvalWait(ctx, q.rdb, enqueueScript, keys, args, q.o.MinReplicas, q.o.ReplicationTimeout, probe)
	if err != nil {
		return nil, err
	}
	if acked < int64(q.o.MinReplicas) {
		return nil, fmt.Errorf("%d of %d replicas acknowledged within %s: %w", acked, q.o.MinReplicas, q.o.ReplicationTimeout, ErrNotReplicated)
	}
	return eval.Int64Slice()
}

// RecordResolved remembers, in one round trip, that alerts resolved (by
// fingerprint, with their endsAt), for runbooks that wait on it.
func (q *Queue) RecordResolved(ctx context.Context, resolved map[string]time.Time) error {
	if len(resolved) == 0 {
		return nil
	}
	pipe := q.rdb.Pipeline()
	for fp, endsAt := range resolved {
		pipe.Set(ctx, q.prefix+":resolved:"+fp, endsAt.UTC().Format(time.RFC3339Nano), q.dedupeTTL)
	}
	_, err := pipe.Exec(ctx)
	return err
}

// Resolved reports whether an alert was recorded as resolved, and when.
func (q *Queue) Resolved(ctx context.Context, fingerprint string) (bool, time.Time, error) {
	s, err := q.rdb.Get(ctx, q.prefix+":resolved:"+fingerprint).Result()
	if errors.Is(err, redis.Nil) {
		return false, time.Time{}, nil
	}
	if err != nil {
		return false, time.Time{}, err
	}
	t, _ := time.Parse(time.RFC3339Nano, s)
	return true, t, nil
}

// EnsureGroup creates the stream and consumer group if missing.
func (q *Queue) EnsureGroup(ctx context.Context) error {
	err := q.rdb.XGroupCreateMkStream(ctx, q.stream, q.group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("create consumer group: %w", err)
	}
	return nil
}

// Read returns up to count jobs for consumer: first entries other
// consumers left idle longer than ClaimAfter, then new ones (blocking up
// to block). A malformed entry is acknowledged and reported in bad.
func (q *Queue) Read(ctx context.Context, consumer string, count int, block time.Duration) (ds []Delivery, bad []string, err error) {
	msgs, _, err := q.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
		Stream: q.stream, Group: q.group, Consumer: consumer, MinIdle: q.claimAfter, Start: "0-0", Count: int64(count),
	}).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		if strings.HasPrefix(err.Error(), "NOGROUP") {
			if err := q.EnsureGroup(ctx); err != nil {
				return nil, nil, err
			}
			return q.Read(ctx, consumer, count, block)
		}
		return nil, nil, fmt.Errorf("claim: %w", err)
	}
	for _, m := range msgs {
		ds, bad = q.decode(ctx, m, true, ds, bad)
	}
	if len(ds) > 0 {
		return ds, bad, nil
	}
	res, err := q.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: q.group, Consumer: consumer, Streams: []string{q.stream, ">"}, Count: int64(count), Block: block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return ds, bad, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read: %w", err)
	}
	for _, s := range res {
		for _, m := range s.Messages {
			ds, bad = q.decode(ctx, m, false, ds, bad)
		}
	}
	return ds, bad, nil
}

func (q *Queue) decode(ctx context.Context, m redis.XMessage, claimed bool, ds []Delivery, bad []string) ([]Delivery, []string) {
	var j Job
	s, _ := m.Values["job"].(string)
	if err := json.Unmarshal([]byte(s), &j); err != nil || j.RunID == "" {
		_ = q.Ack(ctx, m.ID)
		return ds, append(bad, m.ID)
	}
	return append(ds, Delivery{ID: m.ID, Job: j, Claimed: claimed}), bad
}

// Ack removes a finished entry from the pending list and the stream (the
// run's record keeps its history), so the stream stays small.
func (q *Queue) Ack(ctx context.Context, id string) error {
	pipe := q.rdb.TxPipeline()
	pipe.XAck(ctx, q.stream, q.group, id)
	pipe.XDel(ctx, q.stream, id)
	_, err := pipe.Exec(ctx)
	return err
}

// Touch resets an entry's idle time, so no other consumer claims a run
// that is still going. Call it well within ClaimAfter.
func (q *Queue) Touch(ctx context.Context, consumer, id string) error {
	return q.rdb.XClaimJustID(ctx, &redis.XClaimArgs{Stream: q.stream, Group: q.group, Consumer: consumer, MinIdle: 0, Messages: []string{id}}).Err()
}

// Backlog is the number of entries not yet delivered plus those delivered
// but not acknowledged.
func (q *Queue) Backlog(ctx context.Context) (lag, pending int64, err error) {
	groups, err := q.rdb.XInfoGroups(ctx, q.stream).Result()
	if err != nil {
		return 0, 0, err
	}
	for _, g := range groups {
		if g.Name == q.group {
			return g.Lag, g.Pending, nil
		}
	}
	return 0, 0, nil
}

// ClaimAfter is the idle time after which entries are claimed.
func (q *Queue) ClaimAfter() time.Duration { return q.claimAfter }
