package main

import (
	"io"
	"log/slog"

	"github.com/alecthomas/kingpin/v2"
)

type logOptions struct {
	Format string
	Level  string
}

func logFlags(c *kingpin.CmdClause, o *logOptions) {
	c.Flag("log.format", "Log format: logfmt or json.").Default("logfmt").EnumVar(&o.Format, "logfmt", "json")
	c.Flag("log.level", "Log level: debug, info, warn, error.").Default("info").EnumVar(&o.Level, "debug", "info", "warn", "error")
}

func newLogger(o logOptions, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(o.Level))
	ho := &slog.HandlerOptions{Level: lvl}
	if o.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}
