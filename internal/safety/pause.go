package safety

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/locks"
)

// PauseInfo says who paused node-healer, when and why.
type PauseInfo struct {
	By     string    `json:"by"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

func pauseKey(prefix string) string { return prefix + ":paused" }

// Pause stops new runs and holds running ones before their next
// destructive step, on every replica, until Resume.
func Pause(ctx context.Context, rdb redis.UniversalClient, prefix, by, reason string) error {
	b, _ := json.Marshal(PauseInfo{By: by, Reason: reason, Since: time.Now().UTC()})
	return rdb.Set(ctx, pauseKey(prefix), b, 0).Err()
}

// Resume lifts a pause.
func Resume(ctx context.Context, rdb redis.UniversalClient, prefix string) error {
	return rdb.Del(ctx, pauseKey(prefix)).Err()
}

// Paused returns the pause, or nil when not paused.
func Paused(ctx context.Context, rdb redis.UniversalClient, prefix string) (*PauseInfo, error) {
	b, err := rdb.Get(ctx, pauseKey(prefix)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	p := &PauseInfo{}
	if err := json.Unmarshal(b, p); err != nil {
		return &PauseInfo{By: "unknown", Reason: "unreadable pause record"}, nil
	}
	return p, nil
}

// nodeRunsKey is the locks.Window key of the runs counted toward the
// per-node cap (safety.node_runs).
func nodeRunsKey(node string) string { return "node-runs:" + node }

// NodeRuns is how many runs of node count toward the per-node cap within
// window now.
func NodeRuns(ctx context.Context, rdb redis.UniversalClient, prefix, node string, window time.Duration) (int, error) {
	return locks.NewWindow(rdb, prefix).Count(ctx, nodeRunsKey(node), window)
}

// ResetNodeRuns forgets the runs counted toward node's per-node cap, for a
// human who cleared its escalation: the next alert gets the cap's runs
// again instead of escalating straight back. It returns how many runs
// within window were forgotten.
func ResetNodeRuns(ctx context.Context, rdb redis.UniversalClient, prefix, node string, window time.Duration) (int, error) {
	return locks.NewWindow(rdb, prefix).Clear(ctx, nodeRunsKey(node), window)
}
