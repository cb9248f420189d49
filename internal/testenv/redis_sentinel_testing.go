package testenv

import (
	"context"
	"testing"
)

// NewRedisSentinel starts a primary, a replica and three Sentinels for
// one test and stops them when it ends (the tail of each log is logged
// if it failed).
func NewRedisSentinel(t testing.TB, opts SentinelOptions) *RedisSentinel {
	t.Helper()
	s, err := StartRedisSentinel(context.Background(), t.TempDir(), opts)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(s.LogTails(20))
		}
		s.Stop()
	})
	return s
}

// NewRedisTLS starts a TLS-only redis-server with a fresh test CA for one
// test and stops it when the test ends.
func NewRedisTLS(t testing.TB) *RedisTLS {
	t.Helper()
	dir := t.TempDir()
	ca, err := NewTestCA(dir, "server-ca")
	if err != nil {
		t.Fatalf("testenv: test CA: %v", err)
	}
	r, err := StartRedisTLS(dir, ca)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(r.Stop)
	return r
}
