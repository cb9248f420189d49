package safety

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Firing remembers which nodes have firing node-healer alerts (the
// webhook records them), for the breaker. An alert counts until its
// resolved notification arrives, or for MaxAge without a new
// notification (Alertmanager re-sends firing alerts every repeat_interval).
type Firing struct {
	Redis  redis.UniversalClient
	Prefix string
	MaxAge time.Duration // default 6h
}

func (f *Firing) key() string { return f.Prefix + ":firing" }

func (f *Firing) maxAge() time.Duration {
	if f.MaxAge <= 0 {
		return 6 * time.Hour
	}
	return f.MaxAge
}

// Record notes firing alerts (fingerprint → node) and forgets resolved
// ones (fingerprints), in one round trip.
func (f *Firing) Record(ctx context.Context, firing map[string]string, resolved []string) error {
	if len(firing) == 0 && len(resolved) == 0 {
		return nil
	}
	pipe := f.Redis.Pipeline()
	now := strconv.FormatInt(time.Now().Unix(), 10)
	if len(firing) > 0 {
		vals := make([]any, 0, 2*len(firing))
		for fp, node := range firing {
			vals = append(vals, fp, node+"|"+now)
		}
		pipe.HSet(ctx, f.key(), vals...)
	}
	if len(resolved) > 0 {
		pipe.HDel(ctx, f.key(), resolved...)
	}
	_, err := pipe.Exec(ctx)
	return err
}

// Nodes lists nodes with a firing alert seen within MaxAge; older
// entries are dropped.
func (f *Firing) Nodes(ctx context.Context) ([]string, error) {
	all, err := f.Redis.HGetAll(ctx, f.key()).Result()
	if err != nil {
		return nil, err
	}
	cutoff := time.Now().Add(-f.maxAge()).Unix()
	seen := map[string]bool{}
	var stale []string
	for fp, v := range all {
		node, ts, _ := strings.Cut(v, "|")
		if t, _ := strconv.ParseInt(ts, 10, 64); t < cutoff {
			stale = append(stale, fp)
			continue
		}
		seen[node] = true
	}
	if len(stale) > 0 {
		f.Redis.HDel(ctx, f.key(), stale...)
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	return out, nil
}
