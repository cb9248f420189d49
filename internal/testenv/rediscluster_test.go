package testenv_test

import (
	"context"
	"testing"

	"github.com/node-healer/node-healer/internal/testenv"
)

// The harness is a real cluster: same-tag keys go together, others are
// refused with CROSSSLOT.
func TestRedisCluster(t *testing.T) {
	ctx := context.Background()
	c, rdb := testenv.NewRedisCluster(t)
	if len(c.Addrs) != 3 {
		t.Fatalf("addrs = %v", c.Addrs)
	}
	if err := rdb.MSet(ctx, "{a}:1", "x", "{a}:2", "y").Err(); err != nil {
		t.Fatalf("same tag: %v", err)
	}
	err := rdb.MSet(ctx, "a:1", "x", "b:2", "y").Err()
	if !testenv.IsCrossSlot(err) {
		t.Fatalf("different slots: got %v, want CROSSSLOT", err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.Exists(ctx, "{a}:1").Result(); err != nil || n != 0 {
		t.Fatalf("after flush: %d %v", n, err)
	}
}
