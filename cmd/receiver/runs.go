package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/runstore"
)

type runsOptions struct {
	ConfigFile string
	RedisURL   string
	Output     string
	Limit      int
	ID         string
}

func openStore(o runsOptions) (*runstore.Store, func(), error) {
	cfg, err := loadConfigForRedis(o.ConfigFile)
	if err != nil {
		return nil, nil, err
	}
	rdb, err := newRedis(cfg, o.RedisURL)
	if err != nil {
		return nil, nil, err
	}
	return runstore.New(rdb, cfg.Redis.KeyPrefix, time.Duration(cfg.Redis.RunTTL)), func() { rdb.Close() }, nil
}

func runRunsList(ctx context.Context, o runsOptions, out io.Writer) error {
	s, done, err := openStore(o)
	if err != nil {
		return err
	}
	defer done()
	runs, err := s.List(ctx, o.Limit)
	if err != nil {
		return fmt.Errorf("read runs from redis: %w", err)
	}
	if o.Output == "json" {
		return json.NewEncoder(out).Encode(runs)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tNODE\tRUNBOOK\tSTATUS\tSTEP\tCREATED")
	for _, r := range runs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\n", r.ID, r.Node, r.Runbook, r.Status, r.Next, stepsOf(r), r.Created.Format(time.RFC3339))
	}
	return tw.Flush()
}

func stepsOf(r *runbooks.Run) int {
	if b, ok := registry().Get(r.Runbook); ok {
		return len(b.Steps)
	}
	return 0
}

func runRunsShow(ctx context.Context, o runsOptions, out io.Writer) error {
	s, done, err := openStore(o)
	if err != nil {
		return err
	}
	defer done()
	r, err := s.Load(ctx, o.ID)
	if err != nil {
		return err
	}
	if o.Output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	PrintRun(out, r)
	return nil
}

// PrintRun writes a run and its timeline as a table.
func PrintRun(out io.Writer, r *runbooks.Run) {
	fmt.Fprintf(out, "run %s: runbook %s on node %s (route %s) — %s", r.ID, r.Runbook, r.Node, r.Route, r.Status)
	if r.DryRun {
		fmt.Fprint(out, " [dry run]")
	}
	fmt.Fprintln(out)
	if r.Reason != "" || r.RequestedBy != "" {
		fmt.Fprintf(out, "requested by %s: %s\n", r.RequestedBy, r.Reason)
	}
	if r.Error != "" {
		fmt.Fprintf(out, "error: %s\n", r.Error)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tSTART\tTOOK\tOUTCOME\tDETAIL")
	for _, e := range r.Timeline {
		took := "-"
		if !e.End.IsZero() {
			took = e.End.Sub(e.Start).Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Step, e.Start.Format("15:04:05.000"), took, e.Outcome, e.Detail)
	}
	_ = tw.Flush()
	printEvidence(out, r.Evidence)
}

// printEvidence writes what the capture step kept: each command, its
// error if any, and its output indented.
func printEvidence(out io.Writer, evidence []runbooks.Evidence) {
	if len(evidence) == 0 {
		return
	}
	fmt.Fprintln(out, "\nevidence captured before the reset:")
	for _, ev := range evidence {
		if ev.Command == "" {
			fmt.Fprintf(out, "  %s\n", ev.Error)
			continue
		}
		fmt.Fprintf(out, "$ %s", ev.Command)
		if ev.Error != "" {
			fmt.Fprintf(out, "  [%s]", ev.Error)
		}
		if ev.Truncated {
			fmt.Fprintf(out, "  [truncated: the last %d bytes]", len(ev.Output))
		}
		fmt.Fprintln(out)
		if ev.Output != "" {
			for _, l := range strings.Split(strings.TrimRight(ev.Output, "\n"), "\n") {
				fmt.Fprintf(out, "  %s\n", l)
			}
		}
	}
}
