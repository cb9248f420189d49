package testenv

import "testing"

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
