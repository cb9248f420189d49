// Command admission measures the receiver's admission path at fleet scale
// (issue 16): the real receiver binary, a real redis-server, etcd +
// kube-apiserver with kwok playing the kubelets of -nodes nodes (1,000 by
// default), and the workers running.
//
// -receiver takes several binaries (e.g. before and after a change): each
// runs every phase on a fresh redis-server, in turn, -rounds times, on the
// one control plane, so their figures share the machine's load; a table
// of every phase closes the output. Three phases:
//
//   - load-new: -rate payloads/s of 100 alerts for -duration, open loop (a
//     request starts every 1/rate s whether or not the last one finished),
//     every alert new (distinct fingerprint), on 50 nodes (5 %, under the
//     breaker): each alert is enqueued and becomes a dry run.
//   - load-redelivery: the same rate, a fixed population of 5,000 alerts on
//     the same 50 nodes re-sent as Alertmanager re-sends a group: after the
//     first second every alert is a duplicate.
//   - idle (not in the default list): nothing is sent for -idle; the
//     receiver's CPU over that window. A receiver built with -tags pprof
//     (cmd/receiver/pprof.go) is profiled meanwhile: the CPU profile goes
//     to -profile-dir.
//   - storm: -storm nodes (300) alert within one second, two alerts each,
//     in payloads of 100 spread evenly over that second; the breaker's
//     state is polled in Redis every 2 ms: time from the first payload
//     until it is open, and cordons counted -quiet later (must be zero).
//
// After each load phase its alerts are resolved (payloads of 100 resolved
// alerts), so the next phase starts with no firing alert.
//
// For each load phase it prints the webhook's latency percentiles over
// HTTP, status codes, the CPU the receiver and redis-server used, and the
// Redis commands per payload (INFO commandstats, the workers' included).
//
//	bench/admission.sh                                   # this checkout
//	go run ./bench/admission -receiver old,new -rounds 2 # A/B
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/node-healer/node-healer/bench/benchenv"
	"github.com/node-healer/node-healer/internal/testenv"
)

func main() {
	o := opts{}
	flag.StringVar(&o.receiver, "receiver", "bin/receiver", "receiver binaries, comma-separated (each runs every phase, in turn, on a fresh redis-server)")
	flag.IntVar(&o.rounds, "rounds", 1, "times each receiver runs the phases (alternating)")
	flag.IntVar(&o.nodes, "nodes", 1000, "kwok nodes")
	flag.IntVar(&o.rate, "rate", 50, "payloads per second in the load phases")
	flag.IntVar(&o.alerts, "alerts", 100, "alerts per payload")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "length of each load phase")
	flag.IntVar(&o.storm, "storm", 300, "nodes alerting in the storm")
	flag.DurationVar(&o.quiet, "quiet", 10*time.Second, "wait after the storm before counting cordons")
	flag.StringVar(&o.phases, "phases", "load-new,load-redelivery,storm", "phases to run, in order (also: idle)")
	flag.DurationVar(&o.idle, "idle", time.Minute, "length of the idle phase")
	flag.StringVar(&o.profileDir, "profile-dir", ".", "where the idle phase writes a pprof receiver's CPU profile")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "admission:", err)
		os.Exit(1)
	}
}

type opts struct {
	receiver                           string
	nodes, rate, alerts, storm, rounds int
	duration, quiet, idle              time.Duration
	phases, profileDir                 string
}

const (
	prefix    = "node-healer"
	token     = "bench-token"
	waveNodes = 50 // nodes the load phases alert on (5 %)
)

func run(o opts) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "admission-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cl, err := testenv.StartCluster(ctx, dir, testenv.ClusterOptions{Progress: os.Stderr})
	if err != nil {
		return err
	}
	defer cl.Stop()
	nodes := make([]string, o.nodes)
	for i := range nodes {
		nodes[i] = fmt.Sprintf("node-%04d", i)
	}
	t0 := time.Now()
	if err := createNodes(ctx, cl, nodes); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%d kwok nodes Ready in %s\n", len(nodes), time.Since(t0).Round(time.Second))
	fmt.Printf("machine: %d cores,%s; %d nodes\n", nprocs(), cpuModel(), o.nodes)
	// Each round runs every receiver once, in turn, on the same control
	// plane, so that their figures share the machine's load.
	var rows []row
	for round := range o.rounds {
		for i, bin := range strings.Split(o.receiver, ",") {
			rdir := filepath.Join(dir, fmt.Sprintf("r%d-%d", round, i))
			if err := os.MkdirAll(rdir, 0o700); err != nil {
				return err
			}
			rs, err := runReceiver(ctx, o, cl, nodes, bin, rdir)
			if err != nil {
				return fmt.Errorf("%s: %w", bin, err)
			}
			rows = append(rows, rs...)
		}
	}
	fmt.Printf("\n| receiver | phase | p50 | p90 | p99 | max | receiver CPU | redis CPU | Redis cmds/payload | breaker open after |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Println(r)
	}
	return nil
}

// row is one phase's figures for the summary table.
type row struct {
	receiver, phase     string
	p50, p90, p99, max  time.Duration
	cpu, redisCPU, cmds float64
	open                time.Duration
}

func (r row) String() string {
	open, cpu, redisCPU, cmds := "", fmt.Sprintf("%.0f %%", r.cpu), fmt.Sprintf("%.0f %%", r.redisCPU), fmt.Sprintf("%.0f", r.cmds)
	if r.phase == "idle" {
		cpu, redisCPU = fmt.Sprintf("%.2f %%", r.cpu), fmt.Sprintf("%.2f %%", r.redisCPU)
	}
	if r.phase == "storm" {
		open, cpu, redisCPU, cmds = ms(r.open), "", "", ""
		if r.open < 0 {
			open = "not in 30 s"
		}
	}
	return fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |", filepath.Base(r.receiver), r.phase,
		ms(r.p50), ms(r.p90), ms(r.p99), ms(r.max), cpu, redisCPU, cmds, open)
}

// runReceiver runs the phases against one receiver binary on a fresh
// redis-server.
func runReceiver(ctx context.Context, o opts, cl *testenv.Cluster, nodes []string, bin, dir string) ([]row, error) {
	r, err := testenv.StartRedis(dir)
	if err != nil {
		return nil, err
	}
	defer r.Stop()
	rdb := r.Client(0)
	defer rdb.Close()
	_ = os.WriteFile(filepath.Join(dir, "token"), []byte(token), 0o600)
	// Shipped safety defaults (breaker 20 % with at least 3 nodes, hold 5m,
	// settle 5s, one run at a time). Load alerts are dry runs (the nodes
	// stay routable; the workers still admit, lock and record each run);
	// storm alerts go to a real cordon, which the breaker must stop.
	cfg := fmt.Sprintf(`redis: {url: %q}
webhook: {auth: {bearer_token_file: token}}
routes:
  - {name: load, matchers: ['alertname="NodeKernelDeadlock"'], runbook: cordon, dry_run: true}
  - {name: storm, matchers: ['alertname=~"NodeStorm.*"'], runbook: cordon}
`, r.URL(0))
	cfgFile := filepath.Join(dir, "node-healer.yml")
	_ = os.WriteFile(cfgFile, []byte(cfg), 0o600)
	logPath := filepath.Join(dir, "receiver.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	// The receiver logs at its default level (info), as in production.
	rcv, err := benchenv.StartReceiver(bin, cfgFile, cl.Kubeconfig, logf)
	if err != nil {
		return nil, err
	}
	defer rcv.Stop()
	// Let the node cache fill and the first breaker evaluation pass.
	time.Sleep(3 * time.Second)
	b := &bench{o: o, bin: bin, log: logPath, url: rcv.URL + "/webhook", rdb: rdb, pid: rcv.Cmd.Process.Pid, nodes: nodes,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}, Timeout: 10 * time.Second}}
	fmt.Printf("\n### receiver %s\n", bin)
	var rows []row
	for _, p := range strings.Split(o.phases, ",") {
		var rw row
		switch p {
		case "load-new":
			rw, err = b.load(ctx, p, false)
		case "load-redelivery":
			rw, err = b.load(ctx, p, true)
		case "storm":
			rw, err = b.stormPhase(ctx, cl)
		case "idle":
			rw, err = b.idlePhase(ctx)
		default:
			err = fmt.Errorf("unknown phase %q", p)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w\nreceiver log: %s", p, err, tail(logPath, 20))
		}
		rw.receiver, rw.phase = bin, p
		rows = append(rows, rw)
	}
	return rows, nil
}

// createNodes creates kwok-managed nodes, 16 at a time, and waits until
// every one is Ready.
func createNodes(ctx context.Context, cl *testenv.Cluster, names []string) error {
	work := make(chan string)
	errc := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for name := range work {
				n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
					testenv.KwokNodeLabel: testenv.KwokNodeValue, "kubernetes.io/hostname": name, "type": "kwok"}}}
				if _, err := cl.Client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
					select {
					case errc <- fmt.Errorf("create node %s: %w", name, err):
					default:
					}
				}
			}
		})
	}
	for _, n := range names {
		work <- n
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		list, err := cl.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		ready := 0
		if err == nil {
			for _, n := range list.Items {
				for _, c := range n.Status.Conditions {
					if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
						ready++
					}
				}
			}
		}
		if ready >= len(names) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d nodes Ready after 5 minutes", ready, len(names))
		}
		time.Sleep(time.Second)
	}
}

type bench struct {
	o      opts
	bin    string
	log    string
	url    string
	rdb    *redis.Client
	pid    int
	nodes  []string
	client *http.Client
	seq    int
}

type alert struct {
	fp, name, node, status, startsAt, endsAt string
}

func (a alert) json() string {
	ends := a.endsAt
	if ends == "" {
		ends = "0001-01-01T00:00:00Z"
	}
	return fmt.Sprintf(`{"status":%q,"labels":{"alertname":%q,"node":%q,"severity":"critical"},"annotations":{},"startsAt":%q,"endsAt":%q,"fingerprint":%q}`,
		a.status, a.name, a.node, a.startsAt, ends, a.fp)
}

func body(as []alert) []byte {
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = a.json()
	}
	return []byte(`{"version":"4","groupKey":"{}:{}","status":"firing","receiver":"node-healer","alerts":[` + strings.Join(parts, ",") + `]}`)
}

// post sends one payload; it returns the status code (0: transport error).
func (b *bench) post(ctx context.Context, payload []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.url, strings.NewReader(string(payload)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// load sends rate payloads/s for the duration, open loop, then resolves
// every alert it sent.
func (b *bench) load(ctx context.Context, name string, redeliver bool) (row, error) {
	n := b.o.rate * int(b.o.duration.Seconds())
	at := time.Now().UTC().Format(time.RFC3339)
	// The population a redelivery phase re-sends: one second's worth.
	population := b.o.rate * b.o.alerts
	payloads := make([][]byte, n)
	seen := map[string]alert{}
	for i := range payloads {
		as := make([]alert, b.o.alerts)
		for j := range as {
			k := i*b.o.alerts + j
			if redeliver {
				k %= population
			}
			fp := fmt.Sprintf("%s-%08d", name, k)
			as[j] = alert{fp: fp, name: "NodeKernelDeadlock", node: b.nodes[k%waveNodes], status: "firing", startsAt: at}
			seen[fp] = as[j]
		}
		payloads[i] = body(as)
	}
	cmd0, err := commands(ctx, b.rdb)
	if err != nil {
		return row{}, err
	}
	rcpu0, err := procCPU(b.pid)
	if err != nil {
		return row{}, err
	}
	redisCPU0, err := redisCPU(ctx, b.rdb)
	if err != nil {
		return row{}, err
	}
	hist0, err := b.serverHist()
	if err != nil {
		return row{}, err
	}
	waitProf := b.profile("load-"+name, b.o.duration)
	lat := make([]time.Duration, n)
	codes := make([]int, n)
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(b.o.rate)
	start := time.Now()
	for i := range payloads {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		wg.Go(func() {
			t := time.Now()
			codes[i], _ = b.post(ctx, payloads[i])
			lat[i] = time.Since(t)
		})
	}
	wg.Wait()
	took := time.Since(start)
	rcpu1, _ := procCPU(b.pid)
	redisCPU1, _ := redisCPU(ctx, b.rdb)
	cmd1, _ := commands(ctx, b.rdb)
	hist1, _ := b.serverHist()
	waitProf()
	count := map[int]int{}
	for _, c := range codes {
		count[c]++
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*p))] }
	fmt.Printf("\n== %s: %d payloads × %d alerts at %d/s (%d alerts/s) over %d nodes' cache, alerts on %d nodes\n",
		name, n, b.o.alerts, b.o.rate, b.o.rate*b.o.alerts, b.o.nodes, waveNodes)
	fmt.Printf("latency: p50 %s  p90 %s  p99 %s  max %s; codes %v\n", ms(pct(0.5)), ms(pct(0.9)), ms(pct(0.99)), ms(lat[len(lat)-1]), count)
	fmt.Printf("cpu over %s: receiver %.0f %% of a core, redis-server %.0f %%\n", took.Round(time.Millisecond),
		100*(rcpu1-rcpu0)/took.Seconds(), 100*(redisCPU1-redisCPU0)/took.Seconds())
	fmt.Printf("in the receiver (node_healer_webhook_duration_seconds, from the handler's first middleware to its return): %s\n", histShare(hist0, hist1))
	total, detail := perPayload(cmd0, cmd1, n)
	fmt.Printf("redis commands per payload (workers' included): %s\n", detail)
	if count[200] != n {
		return row{}, fmt.Errorf("%d of %d payloads answered 200: %v", count[200], n, count)
	}
	rw := row{p50: pct(0.5), p90: pct(0.9), p99: pct(0.99), max: lat[len(lat)-1],
		cpu: 100 * (rcpu1 - rcpu0) / took.Seconds(), redisCPU: 100 * (redisCPU1 - redisCPU0) / took.Seconds(), cmds: total}
	// Resolve everything this phase fired.
	return rw, b.resolve(ctx, seen)
}

func (b *bench) resolve(ctx context.Context, fired map[string]alert) error {
	now := time.Now().UTC().Format(time.RFC3339)
	var batch []alert
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		code, err := b.post(ctx, body(batch))
		if err != nil || code != 200 {
			return fmt.Errorf("resolving: %d %v", code, err)
		}
		batch = batch[:0]
		return nil
	}
	for _, a := range fired {
		a.status, a.endsAt = "resolved", now
		batch = append(batch, a)
		if len(batch) == b.o.alerts {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// stormPhase: storm nodes alert within one second (two alerts each, in
// payloads of up to 100); time until the breaker is open in Redis.
func (b *bench) stormPhase(ctx context.Context, cl *testenv.Cluster) (row, error) {
	if open, _ := b.rdb.HGet(ctx, prefix+":breaker", "open").Result(); open == "1" {
		return row{}, fmt.Errorf("breaker already open before the storm")
	}
	at := time.Now().UTC().Format(time.RFC3339)
	var as []alert
	storm := b.nodes[waveNodes : waveNodes+b.o.storm]
	for k := range 2 {
		for i, n := range storm {
			as = append(as, alert{fp: fmt.Sprintf("storm-%d-%04d", k, i), name: fmt.Sprintf("NodeStorm%d", k), node: n, status: "firing", startsAt: at})
		}
	}
	// Alertmanager groups by alertname here: node order within each name.
	var payloads [][]byte
	for i := 0; i < len(as); i += b.o.alerts {
		payloads = append(payloads, body(as[i:min(i+b.o.alerts, len(as))]))
	}
	interval := time.Second / time.Duration(len(payloads))
	start := time.Now()
	opened := make(chan time.Duration, 1)
	go func() {
		for time.Since(start) < 30*time.Second {
			if v, _ := b.rdb.HGet(ctx, prefix+":breaker", "open").Result(); v == "1" {
				opened <- time.Since(start)
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
		opened <- -1
	}()
	lat := make([]time.Duration, len(payloads))
	codes := make([]int, len(payloads))
	var wg sync.WaitGroup
	for i := range payloads {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		wg.Go(func() {
			t := time.Now()
			codes[i], _ = b.post(ctx, payloads[i])
			lat[i] = time.Since(t)
		})
	}
	wg.Wait()
	sent := time.Since(start)
	open := <-opened
	time.Sleep(b.o.quiet)
	cordoned := 0
	if list, err := cl.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err == nil {
		for _, n := range list.Items {
			if n.Spec.Unschedulable {
				cordoned++
			}
		}
	}
	slices.Sort(lat)
	fmt.Printf("\n== storm: %d of %d nodes, %d alerts in %d payloads spread over 1 s (sent in %s)\n", b.o.storm, b.o.nodes, len(as), len(payloads), sent.Round(time.Millisecond))
	fmt.Printf("webhook: p50 %s  max %s; codes %v\n", ms(lat[len(lat)/2]), ms(lat[len(lat)-1]), codes)
	// The threshold (20 % of the nodes) is crossed by the payload holding
	// node number 0.2*nodes+1 of the first alert name.
	cross := (b.o.nodes/5 + 1 + b.o.alerts - 1) / b.o.alerts
	crossAt := time.Duration(cross-1) * interval
	if open < 0 {
		fmt.Printf("breaker: NOT open within 30 s\n")
	} else {
		fmt.Printf("breaker: open %s after the first payload (%s after the payload #%d that crossed 20 %%, sent at +%s)\n",
			ms(open), ms(open-crossAt), cross, ms(crossAt))
	}
	fmt.Printf("cordons %s after the storm: %d\n", b.o.quiet, cordoned)
	if cordoned != 0 {
		return row{}, fmt.Errorf("%d nodes cordoned in the storm", cordoned)
	}
	return row{p50: lat[len(lat)/2], p90: lat[len(lat)*9/10], p99: lat[len(lat)-1], max: lat[len(lat)-1], open: open}, nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// commands reads INFO commandstats: command → calls.
func commands(ctx context.Context, rdb *redis.Client) (map[string]int64, error) {
	s, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, l := range strings.Split(s, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(l), ":calls=")
		if !ok {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		n, _ := strconv.ParseInt(calls, 10, 64)
		out[strings.TrimPrefix(name, "cmdstat_")] = n
	}
	return out, nil
}

func perPayload(a, b map[string]int64, n int) (float64, string) {
	type kv struct {
		k string
		v float64
	}
	var all []kv
	total := 0.0
	for k, v := range b {
		if d := float64(v-a[k]) / float64(n); d >= 0.01 && k != "info" {
			all = append(all, kv{k, d})
			total += d
		}
	}
	slices.SortFunc(all, func(x, y kv) int {
		if x.v > y.v {
			return -1
		}
		return 1
	})
	parts := []string{fmt.Sprintf("%.1f in all", total)}
	for _, e := range all {
		parts = append(parts, fmt.Sprintf("%s %.2f", e.k, e.v))
	}
	return total, strings.Join(parts, ", ")
}

// procCPU is a process's user+system CPU time in seconds.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100, nil // USER_HZ
}

// redisCPU is redis-server's used_cpu_sys + used_cpu_user, in seconds.
func redisCPU(ctx context.Context, rdb *redis.Client) (float64, error) {
	s, err := rdb.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, err
	}
	total := 0.0
	for _, l := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return total, nil
}

func nprocs() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			_, v, _ := strings.Cut(l, ":")
			return v
		}
	}
	return ""
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(ls[max(0, len(ls)-n):], "\n")
}

// idlePhase measures the receiver's CPU while nothing is sent, and
// profiles it when it serves pprof (built with -tags pprof).
func (b *bench) idlePhase(ctx context.Context) (row, error) {
	time.Sleep(10 * time.Second) // past start-up and the last phase's tail
	var prof chan error
	if addr := pprofAddr(b.log); addr != "" {
		path := filepath.Join(b.o.profileDir, fmt.Sprintf("idle-%s-%d.pprof", filepath.Base(b.bin), time.Now().Unix()))
		prof = make(chan error, 1)
		go func() {
			resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(b.o.idle.Seconds())))
			if err != nil {
				prof <- err
				return
			}
			defer resp.Body.Close()
			f, err := os.Create(path)
			if err == nil {
				_, err = io.Copy(f, resp.Body)
				f.Close()
			}
			fmt.Printf("idle CPU profile: %s\n", path)
			prof <- err
		}()
	}
	c0, _ := procCPU(b.pid)
	r0, _ := redisCPU(ctx, b.rdb)
	t0 := time.Now()
	time.Sleep(b.o.idle)
	c1, _ := procCPU(b.pid)
	r1, _ := redisCPU(ctx, b.rdb)
	el := time.Since(t0).Seconds()
	if prof != nil {
		if err := <-prof; err != nil {
			return row{}, fmt.Errorf("profile: %w", err)
		}
	}
	fmt.Printf("idle: receiver CPU %.2f %% of a core, redis-server %.2f %% over %s\n", 100*(c1-c0)/el, 100*(r1-r0)/el, b.o.idle)
	return row{cpu: 100 * (c1 - c0) / el, redisCPU: 100 * (r1 - r0) / el}, nil
}

// profile starts a CPU profile of the receiver for d when it serves pprof;
// the returned func waits for it and saves it in -profile-dir.
func (b *bench) profile(name string, d time.Duration) (wait func()) {
	addr := pprofAddr(b.log)
	if addr == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds())))
		if err != nil {
			fmt.Println("profile:", err)
			return
		}
		defer resp.Body.Close()
		path := filepath.Join(b.o.profileDir, fmt.Sprintf("%s-%s-%d.pprof", name, filepath.Base(b.bin), time.Now().Unix()))
		if f, err := os.Create(path); err == nil {
			_, _ = io.Copy(f, resp.Body)
			f.Close()
			fmt.Printf("%s CPU profile: %s\n", name, path)
		}
	}()
	return func() { <-done }
}

// serverHist reads the receiver's webhook duration histogram: cumulative
// counts by upper bound (le).
func (b *bench) serverHist() (map[string]float64, error) {
	resp, err := b.client.Get(strings.TrimSuffix(b.url, "/webhook") + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, l := range strings.Split(string(raw), "\n") {
		rest, ok := strings.CutPrefix(l, `node_healer_webhook_duration_seconds_bucket{le="`)
		if !ok {
			continue
		}
		le, v, _ := strings.Cut(rest, `"} `)
		out[le], _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
	}
	return out, nil
}

// histShare says which share of the requests between two reads of the
// histogram took at most 1, 2.5, 5 and 10 ms.
func histShare(a, b map[string]float64) string {
	total := b["+Inf"] - a["+Inf"]
	if total <= 0 {
		return "no requests"
	}
	var parts []string
	for _, le := range []string{"0.001", "0.0025", "0.005", "0.01", "0.025"} {
		f, _ := strconv.ParseFloat(le, 64)
		parts = append(parts, fmt.Sprintf("≤ %g ms %.2f %%", f*1000, 100*(b[le]-a[le])/total))
	}
	return strings.Join(parts, ", ")
}

// pprofAddr is the address a receiver built with -tags pprof wrote to its
// log ("pprof: serving Go profiles on http://ADDR/debug/pprof/"), or "".
func pprofAddr(logPath string) string {
	b, _ := os.ReadFile(logPath)
	_, rest, ok := strings.Cut(string(b), "pprof: serving Go profiles on http://")
	if !ok {
		return ""
	}
	addr, _, _ := strings.Cut(rest, "/")
	return addr
}
