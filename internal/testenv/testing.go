package testenv

import (
	"testing"

	"github.com/redis/go-redis/v9"
)

// NewRedis starts a redis-server for one test (or benchmark) and stops it
// when the test ends. A missing redis-server fails the test: it is a
// required component, never a reason to skip.
func NewRedis(t testing.TB) *Redis {
	t.Helper()
	r, err := StartRedis(t.TempDir())
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(r.Stop)
	return r
}

// NewRedisClient starts a redis-server for one test and returns a client
// of its database 0, closed when the test ends (before the server stops).
func NewRedisClient(t testing.TB) *redis.Client {
	t.Helper()
	return NewRedis(t).ClientFor(t, 0)
}

// ClientFor is Client(db), closed when the test ends.
func (r *Redis) ClientFor(t testing.TB, db int) *redis.Client {
	c := r.Client(db)
	t.Cleanup(func() { c.Close() })
	return c
}
