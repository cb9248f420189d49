// Package runstore keeps runs (state and timeline) in Redis: one JSON
// value per run, expiring after the retention period, and a sorted set
// indexing them by creation time for listing.
package runstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// Store implements runbooks.Store.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
}

var _ runbooks.Store = (*Store)(nil)

// New returns a store using keys under prefix; runs are kept for ttl.
func New(rdb redis.UniversalClient, prefix string, ttl time.Duration) *Store {
	if ttl == 0 {
		ttl = 7 * 24 * time.Hour
	}
	return &Store{rdb: rdb, prefix: prefix, ttl: ttl}
}

func (s *Store) key(id string) string { return s.prefix + ":run:" + id }
func (s *Store) index() string        { return s.prefix + ":runs" }

// Save writes the run and indexes it.
func (s *Store) Save(ctx context.Context, r *runbooks.Run) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	pipe := s.rdb.TxPipeline()
	pipe.Set(ctx, s.key(r.ID), b, s.ttl)
	pipe.ZAdd(ctx, s.index(), redis.Z{Score: float64(r.Created.UnixMilli()), Member: r.ID})
	pipe.ZRemRangeByScore(ctx, s.index(), "-inf", fmt.Sprint(time.Now().Add(-s.ttl).UnixMilli()))
	_, err = pipe.Exec(ctx)
	return err
}

// Load reads a run; runbooks.ErrRunNotFound when there is none.
func (s *Store) Load(ctx context.Context, id string) (*runbooks.Run, error) {
	b, err := s.rdb.Get(ctx, s.key(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%w: %s", runbooks.ErrRunNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	r := &runbooks.Run{}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("run %s: corrupt record: %w", id, err)
	}
	return r, nil
}

// List returns up to limit runs, newest first.
func (s *Store) List(ctx context.Context, limit int) ([]*runbooks.Run, error) {
	ids, err := s.rdb.ZRevRange(ctx, s.index(), 0, int64(limit)-1).Result()
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.key(id)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, err
	}
	out := make([]*runbooks.Run, 0, len(vals))
	for _, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue // expired between the two reads
		}
		r := &runbooks.Run{}
		if json.Unmarshal([]byte(str), r) == nil {
			out = append(out, r)
		}
	}
	return out, nil
}
