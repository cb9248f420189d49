package testenv

import (
	"context"
	"testing"
)

// NewRedisSentinel starts a primary, a replica and three Sentinels for
// one test and stops them when it ends.
func NewRedisSentinel(t testing.TB) *RedisSentinel {
	t.Helper()
	s, err := StartRedisSentinel(context.Background(), t.TempDir())
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(s.Stop)
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
