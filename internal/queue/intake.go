package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/redisconn"
)

// intakeScript adds every job whose dedupe key is new and records the
// resolved alerts of one webhook payload, in one call. KEYS: the stream,
// n dedupe keys, then the resolved keys. ARGV: TTL ms, n, n (run ID, job JSON) pairs, then the
// resolved alerts' endsAt, in the order of their keys. Returns one 1|0
// (added|duplicate) per job.
var intakeScript = redis.NewScript(`
local n = tonumber(ARGV[2])
local added = {}
for i = 1, n do
  if redis.call('SET', KEYS[1+i], ARGV[1+2*i], 'NX', 'PX', ARGV[1]) then
    redis.call('XADD', KEYS[1], '*', 'job', ARGV[2+2*i])
    added[i] = 1
  else
    added[i] = 0
  end
end
for i = 2 + n, #KEYS do
  redis.call('SET', KEYS[i], ARGV[n + 1 + i], 'PX', ARGV[1])
end
return added`)

// Intake persists one webhook payload in one round trip: the jobs
// (idempotent, as Enqueue), the resolved alerts (as RecordResolved) and
// whatever extra queues on the same pipeline (the firing-alert record),
// then — with Options.MinReplicas — WAITs for the replicas. added[i] is
// false when job i was a duplicate. Any error means nothing can be
// trusted (answer 503: Alertmanager retries; every write here is
// idempotent).
func (q *Queue) Intake(ctx context.Context, jobs []Job, resolved map[string]time.Time, extra func(redis.Pipeliner)) (added []bool, err error) {
	if len(jobs) == 0 && len(resolved) == 0 {
		if extra == nil {
			return nil, nil
		}
		_, err := q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error { extra(p); return nil })
		return nil, err
	}
	keys := make([]string, 1, 1+len(jobs)+len(resolved))
	keys[0] = q.stream
	args := make([]any, 2, 2+2*len(jobs)+len(resolved))
	args[0], args[1] = q.dedupeTTL.Milliseconds(), len(jobs)
	for i := range jobs {
		// go-json-experiment/json (Go's encoding/json/v2): a quarter of
		// encoding/json's allocations per job; workers read it back with
		// encoding/json (TestJobEncodingRoundTrip).
		b, err := json.Marshal(&jobs[i])
		if err != nil {
			return nil, err
		}
		keys = append(keys, q.prefix+":dedupe:"+jobs[i].RunID)
		args = append(args, jobs[i].RunID, b)
	}
	for fp, endsAt := range resolved {
		keys = append(keys, q.prefix+":resolved:"+fp)
		args = append(args, endsAt.UTC().Format(time.RFC3339Nano))
	}
	var res []int64
	if q.o.MinReplicas > 0 {
		probe := func(p redis.Pipeliner) {
			p.Set(ctx, q.prefix+":wait-probe", "1", time.Minute)
			if extra != nil {
				extra(p)
			}
		}
		eval, acked, err := redisconn.EvalWait(ctx, q.rdb, intakeScript, keys, args, q.o.MinReplicas, q.o.ReplicationTimeout, probe)
		if err != nil {
			return nil, fmt.Errorf("intake: %w", err)
		}
		if acked < int64(q.o.MinReplicas) {
			return nil, fmt.Errorf("intake: %d of %d replicas acknowledged within %s: %w", acked, q.o.MinReplicas, q.o.ReplicationTimeout, ErrNotReplicated)
		}
		if res, err = eval.Int64Slice(); err != nil {
			return nil, fmt.Errorf("intake: %w", err)
		}
		return addedOf(res, len(jobs))
	}
	send := func(whole bool) (*redis.Cmd, error) {
		var eval *redis.Cmd
		_, err := q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			if whole {
				eval = intakeScript.Eval(ctx, p, keys, args...)
			} else {
				eval = intakeScript.EvalSha(ctx, p, keys, args...)
			}
			if extra != nil {
				extra(p)
			}
			return nil
		})
		return eval, err
	}
	eval, err := send(false)
	if redis.HasErrorPrefix(eval.Err(), "NOSCRIPT") {
		// The server does not have the script yet (first payload, or it
		// restarted): send it whole; every write here is idempotent.
		eval, err = send(true)
	}
	if err != nil {
		return nil, fmt.Errorf("intake: %w", err)
	}
	if res, err = eval.Int64Slice(); err != nil {
		return nil, fmt.Errorf("intake: %w", err)
	}
	return addedOf(res, len(jobs))
}

func addedOf(res []int64, jobs int) ([]bool, error) {
	if len(res) != jobs {
		return nil, fmt.Errorf("intake: %d results for %d jobs", len(res), jobs)
	}
	added := make([]bool, jobs)
	for i, n := range res {
		added[i] = n == 1
	}
	return added, nil
}
