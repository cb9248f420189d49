package testenv

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// NewReplicatedRedis starts a primary and one replica of it (REPLICAOF),
// waits until the replica has synced, and stops both when the test ends.
// Freeze the replica (Redis.Freeze) to make WAIT fail.
func NewReplicatedRedis(t testing.TB) (primary, replica *Redis) {
	t.Helper()
	primary, replica = NewRedis(t), NewRedis(t)
	ctx := context.Background()
	rc := replica.Client(0)
	defer rc.Close()
	host, port, _ := net.SplitHostPort(primary.Addr)
	if err := rc.ReplicaOf(ctx, host, port).Err(); err != nil {
		t.Fatalf("testenv: replicaof: %v", err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		info, _ := rc.Info(ctx, "replication").Result()
		if strings.Contains(info, "master_link_status:up") {
			return primary, replica
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: the replica never synced: %s", info)
		}
	}
}
