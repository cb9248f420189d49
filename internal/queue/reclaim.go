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

// endedChannel is the Pub/Sub channel on which workers announce that a
// run ended, so that every replica's deferred runs may take the freed
// slot at once.
func (q *Queue) endedChannel() string { return q.prefix + ":runs-ended" }

// AnnounceEnded tells every replica that a run of replica from ended. It
// is a hint: a lost message delays a deferred run until its RetryAt or
// claim_after, as without it.
func (q *Queue) AnnounceEnded(ctx context.Context, from string) error {
	return q.rdb.Publish(ctx, q.endedChannel(), from).Err()
}

// Ended delivers the names of the replicas whose runs ended (announced
// with AnnounceEnded) until ctx ends. The subscription reconnects by
// itself after a connection loss.
func (q *Queue) Ended(ctx context.Context) <-chan string {
	ps := q.rdb.Subscribe(ctx, q.endedChannel())
	out := make(chan string, 64)
	go func() {
		defer close(out)
		defer ps.Close()
		ch := ps.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-ch:
				if !ok {
					return
				}
				select {
				case out <- m.Payload:
				default: // a hint: drop when the reader lags
				}
			}
		}
	}()
	return out
}
