package main

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/prometheus/common/promslog"
	"k8s.io/klog/v2"
)

// logOptions are the app-wide --log.level and --log.format (promslog's
// flags, set on the kingpin app in cli) as plain strings, so that tests
// and other commands can build a logger without flags.
type logOptions struct {
	Format string // logfmt (default) or json
	Level  string // debug, info (default), warn, error
}

// logOptionsOf reads back what promslog's flags parsed.
func logOptionsOf(c *promslog.Config) logOptions {
	var o logOptions
	if c.Format != nil {
		o.Format = c.Format.String()
	}
	if c.Level != nil {
		o.Level = c.Level.String()
	}
	return o
}

// newLogger is promslog's logger writing to w. Values the flags would have
// rejected fall back to promslog's defaults (info, logfmt).
func newLogger(o logOptions, w io.Writer) *slog.Logger {
	c := &promslog.Config{Level: promslog.NewLevel(), Format: promslog.NewFormat(), Writer: w}
	if o.Level != "" {
		_ = c.Level.Set(o.Level)
	}
	if o.Format != "" {
		_ = c.Format.Set(o.Format)
	}
	return promslog.New(c)
}

// klog (client-go's logger) is pointed once at klogHandler, which
// forwards every record to the logger last given to redirectKlog: klog's
// own logger is a global that must not change while client-go logs, and
// tests start several receivers in one process.
var (
	klogTarget atomic.Pointer[slog.Logger]
	klogOnce   sync.Once
)

// redirectKlog sends klog's output (client-go's informers, leader
// election, event broadcaster…) to l as structured records instead of
// klog's own text on stderr. klog's flags are never registered, so its
// verbosity stays 0 (klog.V(1) and above are dropped).
func redirectKlog(l *slog.Logger) {
	klogTarget.Store(l)
	klogOnce.Do(func() { klog.SetSlogLogger(slog.New(klogHandler{})) })
}

// klogHandler applies its WithAttrs/WithGroup calls to the current
// target's handler when it handles a record.
type klogHandler struct {
	with []func(slog.Handler) slog.Handler
}

func (h klogHandler) target() slog.Handler {
	t := klogTarget.Load().Handler()
	for _, f := range h.with {
		t = f(t)
	}
	return t
}

func (h klogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return klogTarget.Load().Handler().Enabled(ctx, l)
}

func (h klogHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.target().Handle(ctx, r)
}

func (h klogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return h.and(func(t slog.Handler) slog.Handler { return t.WithAttrs(as) })
}

func (h klogHandler) WithGroup(name string) slog.Handler {
	return h.and(func(t slog.Handler) slog.Handler { return t.WithGroup(name) })
}

func (h klogHandler) and(f func(slog.Handler) slog.Handler) klogHandler {
	return klogHandler{with: append(h.with[:len(h.with):len(h.with)], f)}
}
