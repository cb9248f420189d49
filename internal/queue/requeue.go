package queue

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// requeueScript refreshes the alert identity's dedupe key (so a late
// retry of the same alert still starts no second run), appends the job
// and deletes entries that can no longer be delivered.
// KEYS: stream, dedupe key; ARGV: ttl ms, run ID, job JSON, dead entry IDs…
var requeueScript = redis.NewScript(`
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[1])
local id = redis.call('XADD', KEYS[1], '*', 'job', ARGV[3])
for i = 4, #ARGV do
  redis.call('XDEL', KEYS[1], ARGV[i])
end
return id`)

// Requeue appends a stream entry for a run that exists but that no entry
// leads to any more (Redis lost it, or it was trimmed or acknowledged by
// hand), so a worker loads the run by its ID and resumes it from its
// saved step. Unlike Enqueue it does not skip a job whose alert identity
// was seen before: that identity is exactly what names the run. dead are
// entries for the run that no worker will be handed again (Refs.DeadFor);
// they are deleted in the same call.
//
// The caller must make sure no entry still leads to the run (Refs.Has)
// while holding the run's node lease, or the run is queued twice (which
// a worker survives — the second delivery finds the node locked or the
// run final — but which costs a claim_after of delay and a log line).
func (q *Queue) Requeue(ctx context.Context, job Job, dead ...string) (entry string, err error) {
	if job.RunID == "" {
		return "", fmt.Errorf("requeue: job has no run ID")
	}
	b, err := json.Marshal(&job)
	if err != nil {
		return "", err
	}
	args := make([]any, 0, 3+len(dead))
	args = append(args, q.dedupeTTL.Milliseconds(), job.RunID, b)
	for _, d := range dead {
		args = append(args, d)
	}
	entry, err = requeueScript.Run(ctx, q.rdb, []string{q.stream, q.prefix + ":dedupe:" + job.RunID}, args...).Text()
	if err != nil {
		return "", fmt.Errorf("requeue run %s: %w", job.RunID, err)
	}
	return entry, nil
}
