package locks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Window counts events (runs) per key over a sliding window on the Redis
// clock, e.g. runs per node over 24 h. Each key is a sorted set of event ids
// scored by the time they were recorded. Methods are safe for concurrent use.
type Window struct {
	rdb    redis.Cmdable
	prefix string
}

// NewWindow returns a Window on rdb with keys under prefix (no '{' or '}').
func NewWindow(rdb redis.Cmdable, prefix string) *Window {
	return &Window{rdb: rdb, prefix: prefix}
}

func (w *Window) windowKey(key string) string { return w.prefix + ":window:{" + key + "}" }

// Record adds event id under key now and returns how many events key has in
// the window ending now, this one included. Recording an id that is already
// in the window changes nothing (its first time stands), so retries and
// resumed runs count once. An event counts for window after it was recorded;
// Record drops older ones, and the key expires when its newest event leaves,
// so use one window length per key.
func (w *Window) Record(ctx context.Context, key, id string, window time.Duration) (int, error) {
	window, err := checkWindow(key, window)
	if err != nil {
		return 0, err
	}
	if id == "" {
		return 0, errors.New("locks: empty window event id")
	}
	n, err := windowRecordScript.Run(ctx, w.rdb, []string{w.windowKey(key)}, id, window.Milliseconds()).Int()
	if err != nil {
		return 0, fmt.Errorf("locks: record %q in window %q: %w", id, key, err)
	}
	return n, nil
}

// Count returns how many events key has in the window ending now.
func (w *Window) Count(ctx context.Context, key string, window time.Duration) (int, error) {
	window, err := checkWindow(key, window)
	if err != nil {
		return 0, err
	}
	n, err := windowCountScript.Run(ctx, w.rdb, []string{w.windowKey(key)}, window.Milliseconds()).Int()
	if err != nil {
		return 0, fmt.Errorf("locks: count window %q: %w", key, err)
	}
	return n, nil
}

// Clear forgets every event under key and returns how many were in the
// window ending now (a human reset the count, e.g. after fixing a node).
func (w *Window) Clear(ctx context.Context, key string, window time.Duration) (int, error) {
	window, err := checkWindow(key, window)
	if err != nil {
		return 0, err
	}
	n, err := windowClearScript.Run(ctx, w.rdb, []string{w.windowKey(key)}, window.Milliseconds()).Int()
	if err != nil {
		return 0, fmt.Errorf("locks: clear window %q: %w", key, err)
	}
	return n, nil
}

// Oldest returns when the oldest event in the window ending now was
// recorded, in Redis time; the count drops by one at Oldest + window. It is
// the zero Time when the window is empty.
func (w *Window) Oldest(ctx context.Context, key string, window time.Duration) (time.Time, error) {
	window, err := checkWindow(key, window)
	if err != nil {
		return time.Time{}, err
	}
	v, err := windowOldestScript.Run(ctx, w.rdb, []string{w.windowKey(key)}, window.Milliseconds()).Int64()
	if err != nil {
		return time.Time{}, fmt.Errorf("locks: oldest in window %q: %w", key, err)
	}
	if v == 0 {
		return time.Time{}, nil
	}
	return time.UnixMilli(v), nil
}

func checkWindow(key string, window time.Duration) (time.Duration, error) {
	if key == "" {
		return 0, errors.New("locks: empty window key")
	}
	window = window.Truncate(time.Millisecond)
	if window < time.Millisecond {
		return 0, fmt.Errorf("locks: window %s is below 1ms", window)
	}
	return window, nil
}

// windowNow sets now (ms of Redis TIME) and from, the exclusive lower bound
// of scores inside the window of ARGV[w] ms.
func windowNow(w string) string {
	return `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local from = now - tonumber(ARGV[` + w + `])
`
}

// windowRecordScript: KEYS[1] window key; ARGV[1] id, ARGV[2] window in ms.
// Returns the count in the window after recording.
var windowRecordScript = redis.NewScript(windowNow("2") + `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', from))
redis.call('ZADD', KEYS[1], 'NX', string.format('%d', now), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('ZCARD', KEYS[1])
`)

// windowCountScript: KEYS[1] window key; ARGV[1] window in ms. Read-only.
var windowCountScript = redis.NewScript(windowNow("1") + `
return redis.call('ZCOUNT', KEYS[1], string.format('(%d', from), '+inf')
`)

// windowOldestScript: KEYS[1] window key; ARGV[1] window in ms. Read-only.
// Returns the oldest score in the window, 0 if none.
var windowOldestScript = redis.NewScript(windowNow("1") + `
local v = redis.call('ZRANGEBYSCORE', KEYS[1], string.format('(%d', from), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if not v[2] then return 0 end
return tonumber(v[2])
`)

// windowClearScript: KEYS[1] window key; ARGV[1] window in ms. Deletes the
// key and returns how many events were inside the window.
var windowClearScript = redis.NewScript(windowNow("1") + `
local n = redis.call('ZCOUNT', KEYS[1], string.format('(%d', from), '+inf')
redis.call('DEL', KEYS[1])
return n
`)
