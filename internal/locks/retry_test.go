package locks_test

import (
	"context"
	"io"
	"net"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/locks"
)

// dropProxy forwards TCP to Redis; when armed it swallows the next reply and
// closes the connection, like a network failure after the server has already
// executed the command.
type dropProxy struct {
	ln     net.Listener
	target string
	armed  atomic.Bool
}

func newDropProxy(t *testing.T, target string) *dropProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dropProxy{ln: ln, target: target}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.pipe(c)
		}
	}()
	return p
}

func (p *dropProxy) pipe(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	go func() { _, _ = io.Copy(server, client); _ = server.Close() }()
	buf := make([]byte, 32<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			if p.armed.CompareAndSwap(true, false) {
				return // the command ran; its reply is lost
			}
			if _, err := client.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

var evalshaCalls = regexp.MustCompile(`cmdstat_evalsha:calls=(\d+)`)

func evalshaCount(t *testing.T, rdb *redis.Client) int {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := evalshaCalls.FindStringSubmatch(info)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// The end-to-end retry-after-success case: go-redis re-sends the acquire
// script after the first reply is lost; the second run must see our own token
// and report the lease we already have, with the same fence.
func TestAcquireSurvivesLostReply(t *testing.T) {
	r, direct := newRedis(t)
	proxy := newDropProxy(t, r.Addr)
	viaProxy := redis.NewClient(&redis.Options{Addr: proxy.ln.Addr().String(), PoolSize: 1, MaxRetries: 3})
	t.Cleanup(func() { _ = viaProxy.Close() })
	l := locks.New(viaProxy, "t")
	ctx := context.Background()

	// Warm up: load the script and leave one healthy pooled connection.
	warm, err := l.Acquire(ctx, "warm-up", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := warm.Release(ctx); err != nil {
		t.Fatal(err)
	}

	before := evalshaCount(t, direct)
	proxy.armed.Store(true)
	lease, err := l.Acquire(ctx, "node-a", time.Minute)
	if err != nil {
		t.Fatalf("Acquire with a lost reply: %v, want acquired", err)
	}
	if proxy.armed.Load() {
		t.Fatal("no reply was dropped; the test did not exercise the retry")
	}
	if runs := evalshaCount(t, direct) - before; runs != 2 {
		t.Errorf("acquire script ran %d times, want 2 (original + go-redis retry)", runs)
	}
	token, fence, _, err := l.Holder(ctx, "node-a")
	if err != nil || token != lease.Token() || fence != lease.Fence() {
		t.Errorf("Holder = %q, %d, %v; want %q, %d", token, fence, err, lease.Token(), lease.Fence())
	}
	if n, err := direct.Get(ctx, l.FenceKey("node-a")).Int64(); err != nil || n != lease.Fence() {
		t.Errorf("fence counter = %d, %v; want %d (incremented once)", n, err, lease.Fence())
	}
}
