package intake

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/queue"
	"github.com/node-healer/node-healer/internal/testenv"
)

// commands records the names of the commands a client sends.
type commands struct {
	mu    sync.Mutex
	names []string
}

func (c *commands) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *commands) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.add(cmd); return next(ctx, cmd) }
}
func (c *commands) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			c.add(cmd)
		}
		return next(ctx, cmds)
	}
}
func (c *commands) add(cmd redis.Cmder) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.names = append(c.names, cmd.Name())
}

// take returns the names sent since the last take.
func (c *commands) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.names
	c.names = nil
	return out
}

func recentFixture(t *testing.T) (*fixture, *testenv.Redis, *redis.Client, *commands) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs redis-server (integration)")
	}
	r := testenv.NewRedis(t)
	c := r.ClientFor(t, 0)
	cmds := &commands{}
	c.AddHook(cmds)
	fx := newFixture(c, queue.Options{Prefix: "t"})
	fx.in.Recent = NewRecent(c, "t")
	// The connections are opened (and the scripts loaded) here: a
	// connection opened during an intake voids what it confirms
	// (recent.go); go-redis keeps one pool for commands, one for pipelines.
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.record(nil, nil, map[string]time.Time{"warm-up": at}); err != nil {
		t.Fatal(err)
	}
	cmds.take()
	return fx, r, c, cmds
}

func streamLen(t *testing.T, c *redis.Client) int64 {
	t.Helper()
	n, err := c.XLen(context.Background(), "{t}:alerts").Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRecentAnswersResend: a payload sent again is answered after one GET
// (no script), with every run a duplicate, as the full intake answers; a
// payload with anything new, or a re-send after the memory's TTL, takes
// the full intake.
func TestRecentAnswersResend(t *testing.T) {
	fx, _, c, cmds := recentFixture(t)
	reqs, firing, resolved := payload(map[string]string{"a": "n1", "b": "n2"}, "gone")
	added, err := fx.record(reqs, firing, resolved)
	if err != nil || fmt.Sprint(added) != "[true true]" {
		t.Fatalf("first: %v %v", added, err)
	}
	cmds.take()
	added, err = fx.record(reqs, firing, resolved)
	if err != nil || fmt.Sprint(added) != "[false false]" {
		t.Fatalf("re-sent: %v %v; want every run a duplicate", added, err)
	}
	if sent := cmds.take(); fmt.Sprint(sent) != "[get]" {
		t.Fatalf("re-sent payload sent %v to Redis; want one get", sent)
	}
	if fx.in.Recent.Hits() != 1 {
		t.Errorf("hits %d, want 1", fx.in.Recent.Hits())
	}
	// One more alert: the full intake, the new one added.
	reqs2, firing2, _ := payload(map[string]string{"a": "n1", "b": "n2", "c": "n3"})
	added, err = fx.record(reqs2, firing2, resolved)
	if err != nil || fmt.Sprint(added) != "[false false true]" {
		t.Fatalf("with a new alert: %v %v", added, err)
	}
	if sent := cmds.take(); !slices.Contains(sent, "evalsha") {
		t.Fatalf("a payload with a new alert sent %v; want the intake scripts", sent)
	}
	// A resolved alert not seen resolved before: the full intake.
	if _, err = fx.record(reqs, firing, map[string]time.Time{"gone": at.Add(time.Minute), "other": at}); err != nil {
		t.Fatal(err)
	}
	if sent := cmds.take(); !slices.Contains(sent, "evalsha") {
		t.Fatalf("a newly resolved alert sent %v; want the intake scripts", sent)
	}
	// Past the TTL: the full intake again.
	fx.in.Recent.ttl = 100 * time.Millisecond
	time.Sleep(150 * time.Millisecond)
	if _, err = fx.record(reqs, firing, resolved); err != nil {
		t.Fatal(err)
	}
	if sent := cmds.take(); !slices.Contains(sent, "evalsha") {
		t.Fatalf("after the TTL sent %v; want the intake scripts", sent)
	}
	if n := streamLen(t, c); n != 3 {
		t.Errorf("%d runs on the stream, want 3 (a, b, c)", n)
	}
}

// TestRecentAfterFlushAll: Redis loses everything between a payload and
// its re-send; the re-send is persisted again (the epoch is gone), not
// answered from memory.
func TestRecentAfterFlushAll(t *testing.T) {
	fx, _, c, _ := recentFixture(t)
	reqs, firing, resolved := payload(map[string]string{"a": "n1", "b": "n2"}, "gone")
	if _, err := fx.record(reqs, firing, resolved); err != nil {
		t.Fatal(err)
	}
	if err := c.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	added, err := fx.record(reqs, firing, resolved)
	if err != nil || fmt.Sprint(added) != "[true true]" {
		t.Fatalf("re-sent after FLUSHALL: %v %v; want both runs enqueued again", added, err)
	}
	if n := streamLen(t, c); n != 2 {
		t.Errorf("%d runs on the stream after the re-send, want 2", n)
	}
	if ns := fx.nodes(t); fmt.Sprint(ns) != "[n1 n2]" {
		t.Errorf("firing nodes %v after the re-send, want [n1 n2]", ns)
	}
	if fx.in.Recent.Hits() != 0 {
		t.Errorf("answered from memory %d times", fx.in.Recent.Hits())
	}
}

// TestRecentAfterRestartFromSnapshot: Redis is killed and restarts from a
// snapshot taken before the last payload — the epoch survives, the
// payload does not. Its re-send is persisted again: the replica had to
// open a new connection, and that alone voids its memory.
func TestRecentAfterRestartFromSnapshot(t *testing.T) {
	fx, r, c, _ := recentFixture(t)
	ctx := context.Background()
	reqs0, firing0, _ := payload(map[string]string{"a": "n1"})
	if _, err := fx.record(reqs0, firing0, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(ctx).Err(); err != nil { // epoch and a on disk
		t.Fatal(err)
	}
	reqs1, firing1, _ := payload(map[string]string{"b": "n2"})
	if added, err := fx.record(reqs1, firing1, nil); err != nil || fmt.Sprint(added) != "[true]" {
		t.Fatalf("b: %v %v", added, err)
	}
	r.Stop() // SIGKILL: b was never saved
	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "t:epoch").Result(); err != nil || v == "" {
		t.Fatalf("the epoch did not survive the restart (%q, %v): the test would not test the connection check", v, err)
	}
	// Alertmanager retries a 503 until a 200.
	var added []bool
	var err error
	for try := 0; try < 5; try++ {
		if added, err = fx.record(reqs1, firing1, nil); err == nil {
			break
		}
		if !strings.Contains(err.Error(), "EOF") && !strings.Contains(err.Error(), "reset") && !strings.Contains(err.Error(), "refused") {
			t.Logf("retrying after %v", err)
		}
	}
	if err != nil || fmt.Sprint(added) != "[true]" {
		t.Fatalf("b re-sent after the restart: %v %v; want it enqueued again", added, err)
	}
	ids, err := c.XRange(ctx, "{t}:alerts", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	runs := 0
	for _, m := range ids {
		if s, ok := m.Values["job"].(string); ok && strings.Contains(s, reqs1[0].RunID) {
			runs++
		}
	}
	if runs != 1 {
		t.Errorf("b's run on the stream %d times after the restart, want 1", runs)
	}
	if fx.in.Recent.Hits() != 0 {
		t.Errorf("answered from memory %d times", fx.in.Recent.Hits())
	}
}
