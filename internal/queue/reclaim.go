package queue

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// Reclaim takes the pending entry id for consumer if it has been idle at
// least minIdle — nobody delivered, claimed or touched it since — and
// reports whether it did. An entry already acknowledged is not taken. A
// worker uses it to pick up again a run it deferred, only if no other
// worker took it over meanwhile.
func (q *Queue) Reclaim(ctx context.Context, consumer, id string, minIdle time.Duration) (bool, error) {
	ids, err := q.rdb.XClaimJustID(ctx, &redis.XClaimArgs{Stream: q.stream, Group: q.group, Consumer: consumer,
		MinIdle: minIdle, Messages: []string{id}}).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return len(ids) == 1, nil
}
