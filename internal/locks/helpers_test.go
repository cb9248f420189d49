package locks_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/testenv"
)

// newRedis starts a real redis-server for t; -short skips the test.
func newRedis(t testing.TB) (*testenv.Redis, *redis.Client) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs redis-server (skipped with -short)")
	}
	r := testenv.NewRedis(t)
	c := r.Client(0)
	t.Cleanup(func() { _ = c.Close() })
	return r, c
}

// wantMetrics compares the lock counters on reg with the given values.
func wantMetrics(t *testing.T, reg *prometheus.Registry, acquired, contended, failed, lost int) {
	t.Helper()
	want := `
# HELP node_healer_lock_acquire_total Node lock acquisition attempts by result (acquired, contended, not_replicated, error).
# TYPE node_healer_lock_acquire_total counter
node_healer_lock_acquire_total{result="acquired"} ` + strconv.Itoa(acquired) + `
node_healer_lock_acquire_total{result="contended"} ` + strconv.Itoa(contended) + `
node_healer_lock_acquire_total{result="error"} ` + strconv.Itoa(failed) + `
node_healer_lock_acquire_total{result="not_replicated"} 0
# HELP node_healer_lock_lost_total Leases lost while held: taken over, expired, or not renewable before expiry.
# TYPE node_healer_lock_lost_total counter
node_healer_lock_lost_total ` + strconv.Itoa(lost) + `
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
