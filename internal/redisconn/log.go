package redisconn

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"
)

// SetLogger sends go-redis' own messages (a Sentinel naming a new
// primary, a Cluster slot map refresh, a pool that cannot dial) to l as
// structured records with component=redis, instead of the standard
// library's log on stderr. Connection-pool dial failures are debug
// records: node-healer's own log lines already report an unreachable
// Redis, once per retry rather than once per dial. go-redis has one logger per process, so the
// last call wins; nil leaves it as it is.
func SetLogger(l *slog.Logger) {
	if l == nil {
		return
	}
	redis.SetLogger(slogPrintf{l.With("component", "redis")})
}

type slogPrintf struct{ l *slog.Logger }

func (s slogPrintf) Printf(ctx context.Context, format string, v ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	level := slog.LevelInfo
	switch {
	case strings.Contains(msg, "connection pool"):
		// One line per failed dial, dozens a second while a primary is
		// down; node-healer's own lines ("cannot read the alert stream",
		// 503s, /-/ready) already say Redis is unreachable.
		level = slog.LevelDebug
	case strings.Contains(msg, "failed") || strings.Contains(msg, "error"):
		level = slog.LevelWarn
	}
	s.l.Log(ctx, level, msg)
}
