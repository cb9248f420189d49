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

// Enqueue persists jobs in one round trip and one script call. added[i]
// is false when job i was a duplicate of one already enqueued. Any error
// means none of the results can be trusted and the caller must report
// failure (503) so that Alertmanager retries.
func (q *Queue) Enqueue(ctx context.Context, jobs []Job) (added []bool, err error) {
	if len(jobs) == 0 {
		return nil, nil
	}
	return q.Intake(ctx, jobs, nil, nil)
}

// RecordResolved remembers, in one round trip, that alerts resolved (by
// fingerprint, with their endsAt), for runbooks that wait on it.
func (q *Queue) RecordResolved(ctx context.Context, resolved map[string]time.Time) error {
	if len(resolved) == 0 {
		return nil
	}
	_, err := q.Intake(ctx, nil, resolved, nil)
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

// ResolvedMany is Resolved for many alerts in one round trip: the
// resolved ones among fingerprints, with when they resolved.
func (q *Queue) ResolvedMany(ctx context.Context, fingerprints []string) (map[string]time.Time, error) {
	cmds := make([]*redis.StringCmd, len(fingerprints))
	_, err := q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, fp := range fingerprints {
			cmds[i] = p.Get(ctx, q.prefix+":resolved:"+fp)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := map[string]time.Time{}
	for i, c := range cmds {
		s, err := c.Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[fingerprints[i]], _ = time.Parse(time.RFC3339Nano, s)
	}
	return out, nil
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
