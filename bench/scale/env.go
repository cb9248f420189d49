package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/bmcsim"
	"github.com/node-healer/node-healer/internal/testenv"
)

// Options sizes the fleet and sets node-healer's limits.
type Options struct {
	// Dir holds every config, log and data folder; it must exist.
	Dir string
	// Receiver is the receiver binary.
	Receiver string
	// Nodes kwok nodes (n0000…), PodsPerNode ReplicaSet-owned pods each.
	Nodes, PodsPerNode int
	// Replicas of the receiver (real `receiver serve` processes).
	Replicas int
	// Workers per replica (workers.count).
	Workers int
	// MaxConcurrent is safety.max_concurrent_runs.
	MaxConcurrent int
	// RebootCount per RebootPeriod, RebootBurst back to back (safety.reboots).
	RebootCount, RebootBurst int
	RebootPeriod             time.Duration
	// Hold is safety.breaker.hold; Settle safety.settle.
	Hold, Settle time.Duration
	// HealthyFor is the reboot runbook's healthy_for (demo timings
	// otherwise, as internal/pipeline's DemoParams).
	HealthyFor time.Duration
	// Progress receives a line per start-up phase.
	Progress io.Writer
}

func (o *Options) defaults() {
	if o.Replicas == 0 {
		o.Replicas = 2
	}
	if o.Workers == 0 {
		o.Workers = 5
	}
	if o.MaxConcurrent == 0 {
		o.MaxConcurrent = 5
	}
	if o.RebootCount == 0 {
		o.RebootCount = 5
	}
	if o.RebootBurst == 0 {
		o.RebootBurst = o.RebootCount
	}
	if o.RebootPeriod == 0 {
		o.RebootPeriod = 10 * time.Minute
	}
	if o.Hold == 0 {
		o.Hold = 20 * time.Second
	}
	if o.Settle == 0 {
		o.Settle = 5 * time.Second
	}
	if o.HealthyFor == 0 {
		o.HealthyFor = 10 * time.Second
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// Namespace of the fleet's workload pods.
const Namespace = "scale"

// Prefix is node-healer's Redis key prefix (the default).
const Prefix = "node-healer"

// Env is a running fleet: redis-server, etcd + kube-apiserver + kwok with
// Options.Nodes nodes and their pods, a Redfish simulator with a system
// per node whose power changes drive the kwok nodes, Alertmanager (for
// silences), and the receiver replicas.
type Env struct {
	O         Options
	Nodes     []string
	Token     string
	Redis     *testenv.Redis
	RDB       *redis.Client
	Cluster   *testenv.Cluster
	AM        *testenv.Alertmanager
	Sim       *bmcsim.Sim
	Replicas  []*Replica
	Config    string // node-healer.yml
	Inventory string

	ctx     context.Context
	cancel  context.CancelFunc
	bmcSrv  *httptest.Server
	powerMu sync.Mutex
	queues  map[string]chan string
	powerWG sync.WaitGroup
	logf    *os.File
}

// NodeName is the i-th fleet node's name.
func NodeName(i int) string { return fmt.Sprintf("n%04d", i) }

// Start brings the fleet up. ctx bounds start-up; on error whatever
// started is stopped.
func Start(ctx context.Context, o Options) (_ *Env, err error) {
	o.defaults()
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	o.Dir = dir
	e := &Env{O: o, Token: "scale-webhook-token", queues: map[string]chan string{}}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			e.Stop()
		}
	}()
	if e.logf, err = os.Create(filepath.Join(dir, "harness.log")); err != nil {
		return nil, err
	}
	for i := range o.Nodes {
		e.Nodes = append(e.Nodes, NodeName(i))
	}
	if err := e.phase("redis-server", func() (err error) {
		e.Redis, err = testenv.StartRedis(dir)
		if err == nil {
			e.RDB = e.Redis.Client(0)
		}
		return err
	}); err != nil {
		return nil, err
	}
	cdir := filepath.Join(dir, "cluster")
	if err := os.MkdirAll(cdir, 0o755); err != nil {
		return nil, err
	}
	fmt.Fprintln(o.Progress, "control plane (etcd, kube-apiserver, kwok):")
	e.Cluster, err = testenv.StartCluster(ctx, cdir, testenv.ClusterOptions{Progress: testenv.Indent(o.Progress)})
	if err != nil {
		return nil, fmt.Errorf("control plane: %w", err)
	}
	f := &Fleet{C: e.Cluster, Progress: o.Progress}
	if err := e.phase(fmt.Sprintf("%d kwok nodes Ready", o.Nodes), func() error { return f.CreateNodes(ctx, e.Nodes) }); err != nil {
		return nil, err
	}
	if err := e.phase(fmt.Sprintf("%d pods Running (%d per node)", o.Nodes*o.PodsPerNode, o.PodsPerNode), func() error {
		return f.CreatePods(ctx, Namespace, "web", e.Nodes, o.PodsPerNode)
	}); err != nil {
		return nil, err
	}
	if err := e.phase(fmt.Sprintf("BMC simulator (Redfish, %d systems)", o.Nodes), e.startBMC); err != nil {
		return nil, err
	}
	if err := e.phase("Alertmanager (silences)", func() (err error) {
		amDir := filepath.Join(dir, "alertmanager")
		if err := os.MkdirAll(amDir, 0o755); err != nil {
			return err
		}
		e.AM, err = testenv.StartAlertmanager(ctx, amDir, "route: {receiver: default}\nreceivers: [{name: default}]\n")
		return err
	}); err != nil {
		return nil, err
	}
	for _, ns := range []string{"node-healer", "node-healer-exec"} {
		if err := e.Cluster.EnsureNamespace(ctx, ns); err != nil {
			return nil, err
		}
	}
	if err := e.writeConfig(); err != nil {
		return nil, err
	}
	for i := range o.Replicas {
		r := &Replica{Name: fmt.Sprintf("healer-%c", 'a'+i), Log: filepath.Join(dir, fmt.Sprintf("receiver-%c.log", 'a'+i))}
		if err := e.phase("node-healer replica "+r.Name+" (receiver serve, caches synced)", func() error {
			return r.start(ctx, o.Receiver, e.Config, e.Cluster.Kubeconfig)
		}); err != nil {
			return nil, err
		}
		e.Replicas = append(e.Replicas, r)
	}
	return e, nil
}

// writeConfig writes node-healer's configuration: the shipped reboot
// route with the demo's runbook timings, and the limits of Options.
func (e *Env) writeConfig() error {
	o := e.O
	token := filepath.Join(o.Dir, "webhook-token")
	if err := os.WriteFile(token, []byte(e.Token+"\n"), 0o600); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`# written by bench/scale
redis: {url: %q}
webhook: {auth: {bearer_token_file: %q}}
bmc: {inventory_file: %q, timeout: 10s}
alertmanagers: [{urls: [%q]}]
workers: {count: %d}
safety:
  max_concurrent_runs: %d
  reboots: {count: %d, period: %s, burst: %d}
  breaker: {hold: %s}
  settle: %s
routes:
  - name: reboot
    matchers: ['node_healer="true"', 'remediation="reboot"']
    runbook: reboot
    params: {reboot_timeout: 20s, ready_timeout: 2m, healthy_for: %s, drain_timeout: 2m}
`, e.Redis.URL(0), token, e.Inventory, e.AM.URL, o.Workers, o.MaxConcurrent,
		o.RebootCount, dur(o.RebootPeriod), o.RebootBurst, dur(o.Hold), dur(o.Settle), dur(o.HealthyFor))
	e.Config = filepath.Join(o.Dir, "node-healer.yml")
	return os.WriteFile(e.Config, []byte(cfg), 0o600)
}

// dur formats a duration as Prometheus' model.Duration parses it.
func dur(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", int(d/time.Second))
	}
	return fmt.Sprintf("%dms", d.Milliseconds())
}

// startBMC serves one Redfish system per node over TLS. Its power hook
// plays the machine, as internal/pipeline does: Off stops the node's
// kubelet (kwok NotReady), On brings it back Ready with a new boot ID.
func (e *Env) startBMC() error {
	systems := make([]bmcsim.System, 0, len(e.Nodes))
	for _, n := range e.Nodes {
		systems = append(systems, bmcsim.System{ID: n})
	}
	sim, err := bmcsim.New(bmcsim.Options{Systems: systems, Username: "admin", Password: "bmc-pw",
		BootTime: 500 * time.Millisecond, ShutdownTime: 200 * time.Millisecond,
		OnPower: e.onPower})
	if err != nil {
		return err
	}
	e.Sim = sim
	srv, inventory, err := sim.ServeTLS(filepath.Join(e.O.Dir, "bmc"), e.Nodes)
	if err != nil {
		return err
	}
	e.bmcSrv, e.Inventory = srv, inventory
	return nil
}

// onPower queues a power change for the node's own goroutine (started on
// first use), so changes apply in order and one slow node holds no other.
func (e *Env) onPower(node, state string) {
	e.powerMu.Lock()
	q, ok := e.queues[node]
	if !ok {
		q = make(chan string, 16)
		e.queues[node] = q
		e.powerWG.Add(1)
		go func() {
			defer e.powerWG.Done()
			for s := range q {
				e.power(node, s)
			}
		}()
	}
	e.powerMu.Unlock()
	q <- state
}

func (e *Env) power(node, state string) {
	ctx, cancel := context.WithTimeout(e.ctx, 60*time.Second)
	defer cancel()
	var err error
	switch state {
	case "Off":
		err = e.Cluster.PowerOff(ctx, node)
	case "On":
		err = e.Cluster.PowerOn(ctx, node)
	}
	if err != nil {
		e.Logf("bmc: power %s %s: %v", state, node, err)
	}
}

// Logf writes a line to harness.log.
func (e *Env) Logf(format string, a ...any) {
	e.powerMu.Lock()
	defer e.powerMu.Unlock()
	if e.logf != nil {
		fmt.Fprintf(e.logf, "%s %s\n", time.Now().Format(time.RFC3339Nano), fmt.Sprintf(format, a...))
	}
}

// Resets lists every applied BMC reset of the given nodes, oldest first.
func (e *Env) Resets(nodes []string) []bmcsim.Reset {
	var out []bmcsim.Reset
	for _, n := range nodes {
		for _, r := range e.Sim.Resets(n) {
			if r.Applied {
				out = append(out, r)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

// Stop stops everything Start started. Safe to call twice.
func (e *Env) Stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	for _, r := range e.Replicas {
		r.Stop()
	}
	e.Replicas = nil
	if e.AM != nil {
		e.AM.Stop()
		e.AM = nil
	}
	if e.bmcSrv != nil {
		e.bmcSrv.Close()
		e.Sim.Close()
		e.bmcSrv = nil
	}
	e.powerMu.Lock()
	for _, q := range e.queues {
		close(q)
	}
	e.queues = map[string]chan string{}
	e.powerMu.Unlock()
	e.powerWG.Wait()
	if e.Cluster != nil {
		e.Cluster.Stop()
		e.Cluster = nil
	}
	if e.RDB != nil {
		_ = e.RDB.Close()
	}
	if e.Redis != nil {
		e.Redis.Stop()
		e.Redis = nil
	}
	if e.logf != nil {
		e.logf.Close()
		e.logf = nil
	}
}

func (e *Env) phase(what string, f func() error) error {
	start := time.Now()
	fmt.Fprintf(e.O.Progress, "%s… ", what)
	if err := f(); err != nil {
		fmt.Fprintln(e.O.Progress, "FAILED")
		return fmt.Errorf("%s: %w", what, err)
	}
	fmt.Fprintf(e.O.Progress, "ok (%.1fs)\n", time.Since(start).Seconds())
	return nil
}

// Replica is one `receiver serve` process. Replicas run as real processes,
// as in production, so that each one's RSS and CPU time are its own
// (/proc/PID) and not mixed with the harness's.
type Replica struct {
	Name, URL, Log string

	cmd  *exec.Cmd
	done chan struct{}
}

// Pid is the process ID.
func (r *Replica) Pid() int { return r.cmd.Process.Pid }

func (r *Replica) start(ctx context.Context, bin, cfg, kubeconfig string) error {
	port, err := testenv.FreePort()
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	r.URL = "http://" + addr
	logf, err := os.Create(r.Log)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "serve", "--config.file="+cfg, "--web.listen-address="+addr,
		"--kubeconfig="+kubeconfig, "--replica="+r.Name)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	r.cmd, r.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(r.done) }()
	// /-/ready answers 200 once Redis answers and the node cache synced.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case <-r.done:
			return fmt.Errorf("%s exited during start-up; see %s", r.Name, r.Log)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if resp, err := http.Get(r.URL + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within 2m; see %s", r.Name, r.Log)
		}
	}
}

// Stop sends SIGTERM, SIGKILL after 15 s, and waits.
func (r *Replica) Stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(15 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}
