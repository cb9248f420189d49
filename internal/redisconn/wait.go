package redisconn

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// EvalWait runs script and then WAIT replicas timeout in one pipeline, so
// on one connection: WAIT covers only its own connection's writes. extra,
// if set, adds commands between the two (a probe write). It returns the
// script's reply and how many replicas acknowledged. Not for Cluster (WAIT
// has no key to route by; the config refuses it).
func EvalWait(ctx context.Context, rdb redis.Cmdable, script *redis.Script, keys []string, args []any,
	replicas int, timeout time.Duration, extra func(redis.Pipeliner)) (*redis.Cmd, int64, error) {
	var eval, wait *redis.Cmd
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		eval = script.Eval(ctx, p, keys, args...)
		if extra != nil {
			extra(p)
		}
		// timeout stays under the client's read timeout (config: at most 2s).
		wait = p.Do(ctx, "wait", replicas, timeout.Milliseconds())
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	if err := eval.Err(); err != nil {
		return nil, 0, err
	}
	acked, err := wait.Int64()
	if err != nil {
		return nil, 0, fmt.Errorf("wait for replicas: %w", err)
	}
	return eval, acked, nil
}
