package testenv

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
)

// NewRedisCluster starts a three-master Redis Cluster for one test (see
// StartRedisCluster) and returns a client on it; both stop when the test
// ends (the tail of each node's log is logged if it failed). Start-up
// takes about a second: a package's cluster tests share one through
// subtests.
func NewRedisCluster(t testing.TB) (*RedisCluster, *redis.ClusterClient) {
	t.Helper()
	c, err := StartRedisCluster(context.Background(), t.TempDir())
	if err != nil {
		t.Fatalf("testenv: redis cluster: %v", err)
	}
	rdb := c.Client()
	t.Cleanup(func() {
		rdb.Close()
		if t.Failed() {
			t.Log(c.LogTails(20))
		}
		c.Stop()
	})
	return c, rdb
}

// ClusterOK fails t when err is not nil, saying so plainly when it is a
// CROSSSLOT refusal (keys of one operation in different cluster slots).
func ClusterOK(t testing.TB, what string, err error) {
	t.Helper()
	if IsCrossSlot(err) {
		t.Fatalf("%s: keys in different cluster slots: %v", what, err)
	}
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
