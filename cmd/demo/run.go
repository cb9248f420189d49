package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/node-healer/node-healer/internal/bmcsim"
	"github.com/node-healer/node-healer/internal/pipeline"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/testenv"
)

// scenario is one fault the demo injects.
type scenario struct {
	about  string
	alert  string // the alert the rules fire
	line   string // the kernel log line
	nodes  []string
	faults map[string]bmcsim.Faults
	config map[string]string
	storm  bool
	// noPowerCycle: the run fails if the node was power-cycled (a slow but
	// progressing reboot must never be cut short).
	noPowerCycle bool
}

var scenarios = map[string]scenario{
	"deadlock-hung": {
		about: "kernel deadlock on node-1; its OS ignores the graceful restart, so node-healer power-cycles it",
		alert: "NodeKernelDeadlock", line: pipeline.LineKernelDeadlock, nodes: []string{"node-1"},
		faults: map[string]bmcsim.Faults{"node-1": {IgnoreGraceful: true}},
	},
	"deadlock": {
		about: "kernel deadlock on node-1; the graceful restart through the BMC works",
		alert: "NodeKernelDeadlock", line: pipeline.LineKernelDeadlock, nodes: []string{"node-1"},
	},
	"deadlock-slow-boot": {
		about: "kernel deadlock on node-1; the graceful restart works but the machine takes 4 minutes to boot (BootProgress moving): node-healer must wait, never power-cycle (use with -shipped)",
		alert: "NodeKernelDeadlock", line: pipeline.LineKernelDeadlock, nodes: []string{"node-1"},
		faults:       map[string]bmcsim.Faults{"node-1": {BootTime: 4 * time.Minute}},
		noPowerCycle: true,
	},
	"deadlock-slow-shutdown": {
		about: "kernel deadlock on node-1; the graceful restart works but the OS takes 2 minutes to shut down (PoweringOff, longer than reboot_progress_timeout) and 4 minutes to boot: node-healer must wait, never power-cycle (use with -shipped)",
		alert: "NodeKernelDeadlock", line: pipeline.LineKernelDeadlock, nodes: []string{"node-1"},
		faults:       map[string]bmcsim.Faults{"node-1": {ShutdownTime: 2 * time.Minute, BootTime: 4 * time.Minute}},
		noPowerCycle: true,
	},
	"readonly-fs": {
		about: "root filesystem remounted read-only on node-1 (the rule waits for: 1m before firing)",
		alert: "NodeReadonlyFilesystem", line: pipeline.LineReadonlyFS, nodes: []string{"node-1"},
	},
	"storm": {
		about: "kernel deadlocks on 3 of 5 nodes at once: more than the breaker allows (40 %, at least 2 nodes), so nothing destructive happens",
		alert: "NodeKernelDeadlock", line: pipeline.LineKernelDeadlock, nodes: []string{"node-1", "node-2", "node-3"},
		config: map[string]string{"safety": "{breaker: {max_unhealthy_percent: 40, min_unhealthy_nodes: 2}}"},
		storm:  true,
	},
}

func run(ctx context.Context, o options) error {
	sc, ok := scenarios[o.Scenario]
	if !ok {
		return fmt.Errorf("unknown scenario %q (deadlock-hung, deadlock, deadlock-slow-boot, deadlock-slow-shutdown, readonly-fs, storm)", o.Scenario)
	}
	out := o.Out
	recv, err := filepath.Abs(o.Receiver)
	if err != nil {
		return err
	}
	if _, err := os.Stat(recv); err != nil {
		return fmt.Errorf("receiver binary %s not found: run `make build` (or `make demo`, which builds it)", o.Receiver)
	}
	dir := o.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "node-healer-demo-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(out, "node-healer demo — scenario %s: %s\nconfigs, logs and data in %s\n", o.Scenario, sc.about, dir)
	if o.BMC == pipeline.BMCIPMI {
		offWait := pipeline.IPMIOffWait.String()
		if o.Shipped {
			offWait = "2m (its default)"
		}
		fmt.Fprintf(out, "BMCs: IPMI 2.0 over LAN (lanplus), one OpenIPMI ipmi_sim per node; a soft reboot is `chassis power soft`, then `on` once off (node-healer's bmc.off_wait: %s)\n", offWait)
	}
	if o.Shipped {
		fmt.Fprintln(out, "shipped timings: Prometheus global scrape/evaluation 30s (NPD 5s), shipped Alertmanager route, node-healer and runbook defaults, 2-minute simulated boot")
	}
	fmt.Fprintln(out)

	startCtx, cancelStart := context.WithTimeout(ctx, 3*time.Minute)
	defer cancelStart()
	started := time.Now()
	p, err := pipeline.Start(startCtx, pipeline.Options{
		Dir: dir, Receiver: recv, FaultNodes: sc.nodes, Faults: sc.faults, Config: sc.config, Progress: out,
		ScrapeInterval: o.Scrape, Shipped: o.Shipped, BMC: o.BMC,
	})
	defer func() {
		fmt.Fprintln(out, "\nstopping every process the demo started…")
		if p != nil {
			p.Stop()
		}
		if left := children(); len(left) > 0 {
			fmt.Fprintf(out, "still running: %s\n", strings.Join(left, ", "))
		} else {
			fmt.Fprintln(out, "all stopped.")
		}
	}()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "pipeline up in %.1fs:\n", time.Since(started).Seconds())
	fmt.Fprintf(out, "  Prometheus %s · Alertmanager %s · node-healer %s (config %s)\n  kubeconfig %s\n\n",
		p.Prometheus.URL, p.Alertmanager.URL, p.Receivers[0].URL, p.ReceiverConfig, p.Cluster.Kubeconfig)

	runCtx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if sc.storm {
		err = storm(runCtx, out, p, sc)
	} else {
		err = heal(runCtx, out, p, sc, o.Scenario)
	}
	if err != nil {
		if ctx.Err() != nil {
			return errors.New("interrupted")
		}
		return err
	}
	if o.Keep {
		fmt.Fprintf(out, "\nStill running (Ctrl-C stops everything):\n  export KUBECONFIG=%s\n  %s/ in a browser: the operator page (read-only: the demo has no web configuration)\n  curl -s %s/api/v1/runs | jq .\n  curl -s %s/api/v1/status | jq .\n  curl -s '%s/api/v1/query?query=node_healer_breaker_open'\n  amtool --alertmanager.url=%s alert query\n",
			p.Cluster.Kubeconfig, p.Receivers[0].URL, p.Receivers[0].URL, p.Receivers[0].URL, p.Prometheus.URL, p.Alertmanager.URL)
		<-ctx.Done()
	}
	return nil
}

// heal injects the fault on one node and follows the run to its end.
func heal(ctx context.Context, out io.Writer, p *pipeline.Pipeline, sc scenario, name string) error {
	node := sc.nodes[0]
	at, err := p.WriteKernelLog(node, sc.line)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s  wrote to %s's kern.log (%s):\n    %s %s kernel: [...] %s\n\n",
		at.Format("15:04:05.000"), node, p.NPD[node].KernLog, at.Format(testenv.KernelLogTime), node, sc.line)
	fmt.Fprintf(out, "   SINCE  SOURCE        EVENT             DETAIL\n")
	tr, err := p.Follow(ctx, pipeline.FollowOptions{Node: node, Alert: sc.alert, Since: at, Emit: func(e pipeline.Event) {
		fmt.Fprintf(out, "%7.1fs  %-12s  %-16s  %s\n", e.Since.Seconds(), e.Source, e.Title, clip(e.Detail, 110))
	}})
	if err != nil {
		return fmt.Errorf("following the heal of %s: %w (logs in %s)", node, err, p.Dir)
	}
	s := tr.Summary()
	fmt.Fprintf(out, "\nSummary — scenario %s, run %s: %s\n", name, tr.Run.ID, s.Status)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  measure\tthis run\tseed's claim (by hand)")
	fmt.Fprintf(tw, "  detection: log line → alert in Alertmanager\t%s\t< 30 s (4–15 min)\n", secs(s.Alertmanager))
	fmt.Fprintf(tw, "    of which node-problem-detector\t%s\t\n", secs(s.NPD))
	fmt.Fprintf(tw, "    of which scrape + rule evaluation (for: as shipped)\t%s\t\n", secs(s.Prometheus-s.NPD))
	fmt.Fprintf(tw, "  log line → webhook at node-healer (group_wait as shipped)\t%s\t\n", secs(s.Accepted))
	fmt.Fprintf(tw, "  log line → cordon\t%s\t\n", secs(s.Cordon))
	fmt.Fprintf(tw, "  recovery: log line → uncordon\t%s\t3–5 min (20–60 min)\n", secs(s.Uncordon))
	fmt.Fprintf(tw, "  pods disrupted (evicted by the drain)\t%d\t\n", s.Evicted)
	fmt.Fprintf(tw, "  BMC resets\t%s\t\n", strings.Join(p.Resets(node), ", "))
	_ = tw.Flush()
	fmt.Fprintf(out, "RESULT scenario=%s status=%s npd=%.2f prometheus=%.2f alertmanager=%.2f webhook=%.2f cordon=%.2f uncordon=%.2f evicted=%d powercycle=%v\n",
		name, s.Status, s.NPD.Seconds(), s.Prometheus.Seconds(), s.Alertmanager.Seconds(), s.Accepted.Seconds(), s.Cordon.Seconds(), s.Uncordon.Seconds(), s.Evicted, s.PowerCycled)
	fmt.Fprintf(out, "STEPS scenario=%s %s resets=%s\n", name, stepTimes(tr), strings.Join(p.Resets(node), ","))
	if s.Status != "succeeded" {
		return fmt.Errorf("the run ended %s: %s", s.Status, tr.Run.Error)
	}
	if sc.noPowerCycle && (s.PowerCycled || len(p.Resets(node)) != 1) {
		return fmt.Errorf("%s was reset %d times (%s), power-cycled: %v; a slow but progressing reboot must get exactly one graceful restart",
			node, len(p.Resets(node)), strings.Join(p.Resets(node), ", "), s.PowerCycled)
	}
	return nil
}

// storm injects the fault on several nodes and shows the breaker holding
// everything back.
func storm(ctx context.Context, out io.Writer, p *pipeline.Pipeline, sc scenario) error {
	var at time.Time
	for i, n := range sc.nodes {
		t, err := p.WriteKernelLog(n, sc.line)
		if err != nil {
			return err
		}
		if i == 0 {
			at = t
		}
	}
	fmt.Fprintf(out, "%s  wrote the kernel deadlock line into the kern.log of %s (%d of %d nodes)\n\n",
		at.Format("15:04:05.000"), strings.Join(sc.nodes, ", "), len(sc.nodes), len(p.Nodes))
	since := func() string { return fmt.Sprintf("%7.1fs", time.Since(at).Seconds()) }
	seen := map[string]bool{}
	var breakerAPI, breakerProm time.Duration
	for breakerAPI == 0 || breakerProm == 0 {
		for _, n := range sc.nodes {
			if s, _ := p.AlertmanagerState(ctx, sc.alert, n); s != "" && !seen["am"+n] {
				seen["am"+n] = true
				fmt.Fprintf(out, "%s  alertmanager  %s %s on %s\n", since(), sc.alert, s, n)
			}
			if runs, _ := p.NodeRuns(ctx, n, at); len(runs) > 0 && !seen["run"+n+string(runs[0].Status)] {
				seen["run"+n+string(runs[0].Status)] = true
				why := ""
				if runs[0].Hold != nil {
					why = " — " + runs[0].Hold.Kind + ": " + runs[0].Hold.Reason
				}
				fmt.Fprintf(out, "%s  node-healer   run %s on %s %s%s\n", since(), runs[0].ID, n, runs[0].Status, clip(why, 100))
			}
		}
		if st, err := p.Status(ctx); err == nil && st.Breaker.Open && breakerAPI == 0 {
			breakerAPI = time.Since(at)
			fmt.Fprintf(out, "%s  node-healer   breaker OPEN: %d of %d nodes unhealthy (threshold %s) — GET /api/v1/status\n", since(), st.Breaker.Unhealthy, st.Breaker.Total, st.Breaker.Threshold)
		}
		if s, err := p.Prometheus.Query(ctx, "node_healer_breaker_open"); err == nil && breakerProm == 0 {
			for _, x := range s {
				if x.Value == 1 {
					breakerProm = time.Since(at)
					fmt.Fprintf(out, "%s  prometheus    node_healer_breaker_open == 1 (scraped from node-healer)\n", since())
					break
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the breaker did not open: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	fmt.Fprintf(out, "%s  watching 20 s more: nothing destructive may happen…\n", since())
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(20 * time.Second):
	}
	st, err := p.Status(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nSummary — scenario storm\n")
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  node\tcordoned\tBMC resets\trun")
	bad := 0
	for _, n := range p.Nodes {
		c, _ := p.Cordoned(ctx, n)
		resets := p.Resets(n)
		run := "—"
		if runs, _ := p.NodeRuns(ctx, n, at); len(runs) > 0 {
			run = runs[0].ID + " " + string(runs[0].Status)
		}
		if c || len(resets) > 0 {
			bad++
		}
		fmt.Fprintf(tw, "  %s\t%v\t%d\t%s\n", n, c, len(resets), run)
	}
	_ = tw.Flush()
	fmt.Fprintf(out, "  breaker: open=%v, %d of %d nodes unhealthy, threshold %s; open in the status API after %s, in Prometheus after %s\n",
		st.Breaker.Open, st.Breaker.Unhealthy, st.Breaker.Total, st.Breaker.Threshold, secs(breakerAPI), secs(breakerProm))
	fmt.Fprintf(out, "  deferred runs: %d (they start only once the breaker closes, after its hold)\n", len(st.Deferred))
	fmt.Fprintf(out, "RESULT scenario=storm breaker_api=%.2f breaker_prometheus=%.2f touched_nodes=%d\n", breakerAPI.Seconds(), breakerProm.Seconds(), bad)
	if bad > 0 {
		return fmt.Errorf("%d nodes were cordoned or reset while the breaker was open", bad)
	}
	return nil
}

// stepTimes lists where the run's seconds went, as name=seconds: the
// webhook's wait for the run to start (queue: accepted → first step), then
// each completed step's duration in timeline order (a repeated step gets
// #2, #3…).
func stepTimes(tr *pipeline.Trace) string {
	var parts []string
	seen := map[string]int{}
	first := true
	for _, e := range tr.Run.Timeline {
		if e.Outcome == runbooks.OutcomeStarted || e.End.IsZero() {
			continue
		}
		if first {
			parts = append(parts, fmt.Sprintf("queue=%.2f", e.Start.Sub(tr.Run.Created).Seconds()))
			first = false
		}
		name := e.Step
		if seen[e.Step]++; seen[e.Step] > 1 {
			name = fmt.Sprintf("%s#%d", e.Step, seen[e.Step])
		}
		parts = append(parts, fmt.Sprintf("%s=%.2f", name, e.End.Sub(e.Start).Seconds()))
	}
	return strings.Join(parts, " ")
}

func secs(d time.Duration) string {
	if d <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}

// children lists the processes this one still has as children (Linux).
func children() []string {
	me := fmt.Sprint(os.Getpid())
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		// pid (comm) state ppid …
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == me {
			out = append(out, s[strings.IndexByte(s, '(')+1:i]+"["+e.Name()+"]")
		}
	}
	return out
}
