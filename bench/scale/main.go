// Command scale measures node-healer at fleet scale (issue 16): a private
// control plane (etcd, kube-apiserver, kwok) with -nodes kwok nodes and
// -pods pods each, redis-server, a Redfish simulator system for every node
// whose power changes drive the kwok nodes, Alertmanager (silences), and
// -replicas `receiver serve` processes. In order it measures:
//
//   - idle: each replica's RSS, CPU and API requests per minute once its
//     caches synced;
//   - storm: -storm-percent of the nodes alert within one second, in
//     payloads of up to -storm-batch alerts: time until the breaker is
//     open, cordons and resets (must be 0), webhook latency; then the
//     alerts resolve and the breaker closes after its hold;
//   - wave: -wave-percent of the nodes alert with max_concurrent_runs
//     -max-concurrent and -reboots per -reboot-period: every node healed,
//     the cap and the rate never exceeded, total time against what the
//     limits allow, API requests per healed node; meanwhile, webhook load
//     (-load-alerts-alert payloads at -load-rate per second);
//   - drain: a node with -drain-pods pods (three priority classes, a
//     third under budgets allowing one disruption at a time) drained by
//     node-healer's Drainer beside `kubectl drain` of an identical node.
//
// It prints a table with the targets of issue 16. `make bench-scale` runs
// it at 1,000 nodes × 30 pods; bench/scale/scale_test.go runs a smaller
// fleet in `make test`.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

type flags struct {
	receiver, kubectl, dir               string
	nodes, pods, replicas, workers       int
	stormPct                             float64
	stormBatch                           int
	wavePct                              float64
	maxConcurrent, reboots               int
	rebootPeriod, hold, idle, stormWatch time.Duration
	loadRate, loadAlerts                 int
	loadFor                              time.Duration
	drainPods, drainPDBSize              int
	keep                                 bool
	loadInProcess                        bool
	skipDrain                            bool
}

func main() {
	if os.Getenv(loadgenEnv) == "1" { // the webhook load's own process (loadgen.go)
		if err := loadgenMain(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "scale load sender:", err)
			os.Exit(1)
		}
		return
	}
	var f flags
	flag.StringVar(&f.receiver, "receiver", "bin/receiver", "receiver binary")
	flag.StringVar(&f.kubectl, "kubectl", "", "kubectl binary for the drain comparison (empty: node-healer only)")
	flag.StringVar(&f.dir, "dir", "", "folder for data and logs (default: a temporary one, removed unless -keep)")
	flag.IntVar(&f.nodes, "nodes", 1000, "kwok nodes")
	flag.IntVar(&f.pods, "pods", 30, "pods per node")
	flag.IntVar(&f.replicas, "replicas", 2, "receiver replicas (processes)")
	flag.IntVar(&f.workers, "workers", 5, "workers.count per replica")
	flag.Float64Var(&f.stormPct, "storm-percent", 30, "percent of the nodes alerting in the storm")
	flag.IntVar(&f.stormBatch, "storm-batch", 100, "alerts per storm payload (Alertmanager max_alerts)")
	flag.Float64Var(&f.wavePct, "wave-percent", 5, "percent of the nodes alerting in the wave")
	flag.IntVar(&f.maxConcurrent, "max-concurrent", 5, "safety.max_concurrent_runs")
	flag.IntVar(&f.reboots, "reboots", 5, "safety.reboots.count (and burst)")
	flag.DurationVar(&f.rebootPeriod, "reboot-period", 30*time.Second, "safety.reboots.period (issue 16 says 10m: 50 reboots then take 90 min; the default compresses time 20×)")
	flag.DurationVar(&f.hold, "hold", 20*time.Second, "safety.breaker.hold")
	flag.DurationVar(&f.idle, "idle", time.Minute, "idle measurement window")
	flag.DurationVar(&f.stormWatch, "storm-watch", 15*time.Second, "how long to watch for destructive actions after the storm (settle is 5s)")
	flag.IntVar(&f.loadRate, "load-rate", 50, "webhook payloads per second during the wave")
	flag.IntVar(&f.loadAlerts, "load-alerts", 100, "alerts per load payload")
	flag.DurationVar(&f.loadFor, "load-for", time.Minute, "how long the load runs (from settle after the wave's alerts)")
	flag.IntVar(&f.drainPods, "drain-pods", 110, "pods on the drained node (kubelet's maxPods)")
	flag.IntVar(&f.drainPDBSize, "drain-pdb-size", 9, "pods per budget on the drained node (a third of the pods are under budgets)")
	flag.BoolVar(&f.loadInProcess, "load-in-process", false, "send the webhook load from the harness's process (default: a process of its own, as Alertmanager is)")
	flag.BoolVar(&f.skipDrain, "skip-drain", false, "skip the drain comparison")
	flag.BoolVar(&f.keep, "keep", false, "keep the data folder")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, f, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, f flags, out io.Writer) error {
	if f.nodes < 20 {
		return fmt.Errorf("-nodes %d: at least 20", f.nodes)
	}
	dir := f.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "scale-")
		if err != nil {
			return err
		}
		if !f.keep {
			defer os.RemoveAll(d)
		}
		dir = d
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	recv, err := filepath.Abs(f.receiver)
	if err != nil {
		return err
	}
	began := time.Now()
	fmt.Fprintf(out, "machine: %d CPUs (%s), %s; data in %s\n", runtime.NumCPU(), cpuModel(), memTotal(), dir)
	e, err := Start(ctx, Options{Dir: dir, Receiver: recv, Nodes: f.nodes, PodsPerNode: f.pods, Replicas: f.replicas,
		Workers: f.workers, MaxConcurrent: f.maxConcurrent, RebootCount: f.reboots, RebootBurst: f.reboots,
		RebootPeriod: f.rebootPeriod, Hold: f.hold, Progress: out})
	if err != nil {
		return err
	}
	defer e.Stop()
	startup := time.Since(began)
	obs, err := NewObserver(ctx, e)
	if err != nil {
		return err
	}
	t := &table{w: out}

	fmt.Fprintf(out, "idle: %s warm-up, then %s…\n", 20*time.Second, f.idle)
	idle, err := Idle(ctx, e, 20*time.Second, f.idle)
	if err != nil {
		return fmt.Errorf("idle: %w", err)
	}

	stormN := int(float64(f.nodes) * f.stormPct / 100)
	stormNodes := e.Nodes[:stormN]
	fmt.Fprintf(out, "storm: %d nodes…\n", stormN)
	storm, err := Storm(ctx, e, obs, stormNodes, f.stormBatch, f.stormWatch)
	if err != nil {
		return fmt.Errorf("storm: %w", err)
	}

	waveN := max(int(float64(f.nodes)*f.wavePct/100), 1)
	waveNodes := e.Nodes[stormN : stormN+waveN]
	resolved := make([]Alert, 0, stormN)
	for _, n := range stormNodes {
		resolved = append(resolved, NodeAlert("NodeKernelDeadlock", n, time.Now().Add(-time.Hour)).Resolved(time.Now()))
	}
	fmt.Fprintf(out, "wave: %d nodes (with webhook load: %d-alert payloads at %d/s for %s)…\n", waveN, f.loadAlerts, f.loadRate, f.loadFor)
	var load *LoadSpec
	if f.loadRate > 0 {
		load = &LoadSpec{Rate: f.loadRate, PerPayload: f.loadAlerts, For: f.loadFor, Resolved: resolved, InProcess: f.loadInProcess}
	}
	wave, err := Wave(ctx, e, obs, waveNodes, 30*time.Minute, load)
	if err != nil {
		return fmt.Errorf("wave: %w", err)
	}
	var drain *DrainResult
	if !f.skipDrain {
		fmt.Fprintf(out, "drain: %d pods per node…\n", f.drainPods)
		d, err := Drain(ctx, e, DrainSpec{Pods: f.drainPods, PDBPods: f.drainPods / 3, PDBSize: f.drainPDBSize, Kubectl: f.kubectl})
		if err != nil {
			return fmt.Errorf("drain: %w", err)
		}
		drain = &d
	}
	var peak []string
	for _, r := range e.Replicas {
		peak = append(peak, fmt.Sprintf("%s %s", r.Name, vmHWM(r.Pid())))
	}

	fmt.Fprintf(out, "\n== node-healer at fleet scale: %d nodes × %d pods, %d replicas (start-up %s, whole run %s) ==\n",
		f.nodes, f.pods, f.replicas, startup.Round(time.Second), time.Since(began).Round(time.Second))
	t.head()
	for _, r := range idle {
		t.row("idle "+r.Name+": RSS", "≤ 150 MB", fmt.Sprintf("%.0f MB", float64(r.RSSBytes)/1e6), float64(r.RSSBytes) <= 150e6)
		t.row("idle "+r.Name+": CPU", "≤ 2 % of a core", fmt.Sprintf("%.2f %%", r.CPUPercent), r.CPUPercent <= 2)
		t.row("idle "+r.Name+": API requests", "≤ 10 /min", fmt.Sprintf("%.1f /min %v", r.ReqPerMin, r.RequestsBy), r.ReqPerMin <= 10)
	}
	slat := storm.Latencies
	t.row(fmt.Sprintf("storm %d nodes (%d payloads ≤%d alerts in 1 s): breaker open after first payload", storm.Nodes, storm.Payloads, storm.PerPayload),
		"≤ 1 s", durOr(storm.OpenAfter, "never"), storm.OpenAfter > 0 && storm.OpenAfter <= time.Second)
	t.row("storm: cordons / BMC resets", "0 / 0", fmt.Sprintf("%d / %d", storm.Cordoned, storm.Resets), storm.Cordoned == 0 && storm.Resets == 0)
	t.row("storm: webhook p50 / p99 / max", "p99 ≤ 20 ms", fmt.Sprintf("%s / %s / %s %v", ms(Percentile(slat, .5)), ms(Percentile(slat, .99)), ms(Percentile(slat, 1)), storm.Codes),
		Percentile(slat, .99) <= 20*time.Millisecond)
	t.row("storm: runs of storm nodes before resolve", "none started", fmt.Sprint(storm.Runs), storm.Runs["running"]+storm.Runs["succeeded"]+storm.Runs["failed"] == 0)
	t.row("storm: resolved → breaker closed", fmt.Sprintf("after hold %s", storm.Hold), durOr(storm.ClosedAfter, "never"),
		storm.ClosedAfter >= storm.Hold && storm.ClosedAfter <= storm.Hold+30*time.Second)
	t.row("storm: resolved → deferred runs cancelled", "-", durOr(storm.Cleared, "not within 3 min"), storm.Cleared > 0)
	t.row("storm: API requests (both replicas)", "-", fmt.Sprintf("%.0f %v", storm.Requests, storm.RequestsBy), true)
	w := wave
	t.row(fmt.Sprintf("wave %d nodes: healed", w.Nodes), fmt.Sprint(w.Nodes), fmt.Sprintf("%d %v", w.Healed, w.NotHealed), w.Healed == w.Nodes)
	t.row("wave: most runs at once (slots / cordoned)", fmt.Sprintf("≤ %d", w.Cap), fmt.Sprintf("%d / %d (%d samples)", w.MaxActive, w.MaxCordoned, w.Samples),
		w.MaxActive <= w.Cap && w.MaxCordoned <= w.Cap)
	t.row(fmt.Sprintf("wave: reboot rate (%d per %s, burst %d)", f.reboots, f.rebootPeriod, f.reboots), "never faster",
		fmt.Sprintf("%d resets, %d violations, min gap %s", len(w.Resets), w.RateViolations, w.MinGap.Round(time.Millisecond)), w.RateViolations == 0 && len(w.Resets) >= w.Healed)
	bound := max(w.RateBound, w.CapBound)
	t.row("wave: total time vs what the limits allow", "≤ +10 %",
		fmt.Sprintf("%s vs %s (rate %s, cap %s; run %s, reset at +%s, tail %s) = %+.0f %%", sec(w.Total), sec(bound), sec(w.RateBound), sec(w.CapBound),
			sec(w.RunMedian), sec(w.Head), sec(w.Tail), 100*(w.Total.Seconds()/bound.Seconds()-1)), w.Total.Seconds() <= 1.1*bound.Seconds())
	t.row("wave: API requests per healed node", fmt.Sprintf("≤ %.0f (1.2×%d pods + 50)", w.Target, f.pods), fmt.Sprintf("%.1f (%.0f in all) %v", w.PerRun, w.Requests, top(w.RequestsBy, 8)),
		w.PerRun <= w.Target)
	if l := w.Load; l != nil {
		name := fmt.Sprintf("webhook under load (%d-alert payloads at %d/s, during the wave; sender: %s)", f.loadAlerts, f.loadRate, l.Sender)
		if l.Err != nil {
			t.row(name, "p99 ≤ 5 ms", "FAILED: "+l.Err.Error(), false)
		} else {
			t.row(name, "p99 ≤ 5 ms",
				fmt.Sprintf("p50 %s p99 %s max %s; %d sent, %.1f/s answered, %d late, %v; inside the receivers p99 ≤ %s, %.1f %% ≤ 5 ms", ms(Percentile(l.Latencies, .5)), ms(Percentile(l.Latencies, .99)), ms(Percentile(l.Latencies, 1)),
					l.Sent, l.Achieved, l.Late, l.Codes, ms(l.ServerP99), 100*l.ServerUnder5ms)+perReplica(e, l.PerURL), Percentile(l.Latencies, .99) <= 5*time.Millisecond && l.Codes[200] == l.Sent)
		}
	}
	if d := drain; d != nil {
		for _, s := range []DrainSide{d.Healer, d.Kubectl} {
			if s.Tool == "" {
				continue
			}
			val := fmt.Sprintf("%s, %d requests (%.2f/pod), %d budget 429s", sec(s.Duration), s.Requests, float64(s.Requests)/float64(d.Spec.Pods), s.Blocked)
			if s.Err != nil {
				val = "FAILED: " + s.Err.Error()
			}
			t.row(fmt.Sprintf("drain %d pods (%d under %d-pod budgets, priorities %v): %s", d.Spec.Pods, d.Spec.PDBPods, d.Spec.PDBSize, d.Priority, s.Tool), "-", val, s.Err == nil)
		}
	}
	fmt.Fprintf(out, "replicas' peak RSS (VmHWM) at the end: %s\n", strings.Join(peak, ", "))
	if t.missed > 0 {
		fmt.Fprintf(out, "%d of %d rows missed their target (see MISSED)\n", t.missed, t.rows)
	}
	return nil
}

// perReplica is each replica's p50 / p99 of the load, to tell one from
// the other (replica-0 also answers the harness's run list every second).
func perReplica(e *Env, lat [][]time.Duration) string {
	var parts []string
	for i, l := range lat {
		if i < len(e.Replicas) && len(l) > 0 {
			parts = append(parts, fmt.Sprintf("%s p50 %s p99 %s", e.Replicas[i].Name, ms(Percentile(l, .5)), ms(Percentile(l, .99))))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "; " + strings.Join(parts, ", ")
}

type table struct {
	w            io.Writer
	rows, missed int
}

func (t *table) head() {
	fmt.Fprintf(t.w, "%-6s | %-70s | %-24s | %s\n", "", "measure", "target", "measured")
}

func (t *table) row(what, target, got string, ok bool) {
	t.rows++
	mark := "ok"
	if !ok {
		mark = "MISSED"
		t.missed++
	}
	fmt.Fprintf(t.w, "%-6s | %-70s | %-24s | %s\n", mark, what, target, got)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }
func sec(d time.Duration) string {
	return fmt.Sprintf("%.1f s", d.Seconds())
}
func durOr(d time.Duration, none string) string {
	if d <= 0 {
		return none
	}
	return fmt.Sprintf("%.3f s", d.Seconds())
}

func top(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], "…")
	}
	return s
}

func vmHWM(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return "?"
}

func memTotal() string {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			return strings.TrimSpace(v) + " RAM"
		}
	}
	return "?"
}
