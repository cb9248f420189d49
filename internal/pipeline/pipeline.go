// Package pipeline runs node-healer's whole detection-to-remediation
// pipeline on one machine, every component real but the hardware: etcd,
// kube-apiserver and kwok (the nodes), redis-server, a Redfish BMC
// simulator per node whose power changes drive the kwok nodes, one
// node-problem-detector per faulty node reading its own kern.log,
// Prometheus with the shipped rules, Alertmanager with the shipped config,
// and node-healer's receiver binary. `make demo` (cmd/demo) and the
// end-to-end tests (e2e/) both use it: Start, inject a fault with
// WriteKernelLog, follow the run with Follow, Stop.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	corev1 "k8s.io/api/core/v1"

	"github.com/node-healer/node-healer/internal/bmcsim"
	"github.com/node-healer/node-healer/internal/testenv"
)

// Namespace holds the workload pods.
const Namespace = "demo"

// Options configures Start. Zero values take the documented defaults.
type Options struct {
	// Dir holds every config, log and data folder; it must exist.
	Dir string
	// Receiver is the receiver binary (bin/receiver, or BuildReceiver).
	Receiver string
	// Nodes is the number of kwok nodes, node-1…node-N (default 5).
	Nodes int
	// PodsPerNode is the number of ReplicaSet pods per node (default 20);
	// each node's pods have a PodDisruptionBudget, and the last node also
	// runs a StatefulSet pod.
	PodsPerNode int
	// FaultNodes get a node-problem-detector each (default node-1).
	FaultNodes []string
	// Faults are BMC faults per node, e.g. IgnoreGraceful for a hung OS.
	// With BMC "ipmi" only IgnoreGraceful applies (the others need the
	// Redfish simulator; Start says so).
	Faults map[string]bmcsim.Faults
	// BMC is the nodes' power protocol: "redfish" (default: the project's
	// Redfish simulator on the DMTF mockup, one system per node) or "ipmi"
	// (one OpenIPMI ipmi_sim per node, IPMI 2.0 over LAN, lanplus).
	BMC string
	// Replicas is the number of node-healer replicas (default 1).
	// Alertmanager's webhook goes to the first.
	Replicas int
	// Params override DemoParams for the reboot route.
	Params map[string]string
	// Config holds node-healer config sections as YAML flow values, by
	// key: "workers", "locks", "safety" (absent: node-healer's defaults).
	Config map[string]string
	// GroupWait, GroupInterval replace the shipped node-healer route's
	// timings in Alertmanager when non-zero (tests only; the demo and the
	// measurements keep the shipped ones).
	GroupWait, GroupInterval time.Duration
	// ScrapeInterval is Prometheus' global scrape interval (default 1s, or
	// 30s with Shipped).
	ScrapeInterval time.Duration
	// Shipped runs the pipeline on shipped timings instead of the demo's
	// short ones, for measuring recovery as a cluster would see it:
	// Prometheus' global scrape and evaluation interval 30s (a
	// kube-prometheus-style setup; ScrapeInterval overrides it), the NPD
	// job scraped every 5s as deploy/prometheus/npd-podmonitor.yaml does,
	// the rules' own group intervals, Alertmanager's route as shipped,
	// node-healer's defaults and the reboot runbook's default parameters
	// (no DemoParams; Params still apply), and BMCs that boot like a
	// server: 2 minutes from power-on to a running OS, PoweringOn while
	// booting, BootProgress reported, a 3s graceful shutdown (the bmc-sim
	// command's defaults).
	Shipped bool
	// Progress receives one line per start-up phase.
	Progress io.Writer
}

// Pipeline is a running pipeline.
type Pipeline struct {
	Dir   string
	Nodes []string
	Token string

	Redis        *testenv.Redis
	Cluster      *testenv.Cluster
	BMC          *bmcsim.Sim                 // the Redfish simulator (nil with BMC "ipmi")
	IPMI         map[string]*testenv.IPMISim // one per node with BMC "ipmi"
	NPD          map[string]*testenv.NPD
	Alertmanager *testenv.Alertmanager
	Prometheus   *testenv.Prometheus
	Receivers    []*Receiver
	// ReceiverConfig is node-healer's config file.
	ReceiverConfig string

	opts   Options
	bmc    *bmcEnv
	ctx    context.Context
	cancel context.CancelFunc

	stopOnce sync.Once
	logMu    sync.Mutex
	logFile  *os.File
}

// Start starts every component and returns once all are ready. On error,
// whatever started is stopped. ctx bounds start-up only.
func Start(ctx context.Context, o Options) (_ *Pipeline, err error) {
	if o.Dir == "" {
		return nil, errors.New("pipeline: Options.Dir is required")
	}
	if o.Receiver == "" {
		return nil, errors.New("pipeline: Options.Receiver is required")
	}
	if o.Nodes == 0 {
		o.Nodes = 5
	}
	if o.PodsPerNode == 0 {
		o.PodsPerNode = 20
	}
	if o.FaultNodes == nil {
		o.FaultNodes = []string{"node-1"}
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if err := checkBMC(&o); err != nil {
		return nil, err
	}
	if o.ScrapeInterval == 0 {
		o.ScrapeInterval = time.Second
		if o.Shipped {
			o.ScrapeInterval = ShippedInterval
		}
	}
	params := map[string]string{}
	if !o.Shipped {
		for k, v := range DemoParams {
			params[k] = v
		}
	}
	for k, v := range o.Params {
		params[k] = v
	}
	o.Params = params
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{Dir: dir, opts: o, NPD: map[string]*testenv.NPD{}, Token: "pipeline-webhook-token"}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if p.logFile, err = os.Create(filepath.Join(dir, "pipeline.log")); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			p.Stop()
		}
	}()
	for i := 1; i <= o.Nodes; i++ {
		p.Nodes = append(p.Nodes, fmt.Sprintf("node-%d", i))
	}
	for _, n := range o.FaultNodes {
		if !containsStr(p.Nodes, n) {
			return nil, fmt.Errorf("pipeline: fault node %s is not one of %s", n, strings.Join(p.Nodes, ", "))
		}
	}

	if err := p.phase("redis-server", func() (err error) {
		p.Redis, err = testenv.StartRedis(dir)
		return err
	}); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Progress, "control plane (etcd, kube-apiserver, kwok) with %d nodes:\n", o.Nodes)
	if err := os.MkdirAll(filepath.Join(dir, "cluster"), 0o755); err != nil {
		return nil, err
	}
	p.Cluster, err = testenv.StartCluster(ctx, filepath.Join(dir, "cluster"), testenv.ClusterOptions{Nodes: p.Nodes, Progress: testenv.Indent(o.Progress)})
	if err != nil {
		return nil, fmt.Errorf("control plane: %w", err)
	}
	if err := p.phase(fmt.Sprintf("workload: %d ReplicaSet pods per node, a PDB per node, a StatefulSet pod", o.PodsPerNode), func() error {
		return p.createWorkload(ctx)
	}); err != nil {
		return nil, err
	}
	bmcPhase, startBMC := fmt.Sprintf("BMC simulator (Redfish, %d systems)", len(p.Nodes)), p.startBMC
	if o.BMC == BMCIPMI {
		bmcPhase, startBMC = fmt.Sprintf("BMC simulators (IPMI 2.0 over LAN: OpenIPMI ipmi_sim, one per node, %d)", len(p.Nodes)), p.startIPMI
	}
	if err := p.phase(bmcPhase, startBMC); err != nil {
		return nil, err
	}
	for _, n := range o.FaultNodes {
		if err := p.phase("node-problem-detector for "+n, func() error {
			npd, err := testenv.NewNPD(filepath.Join(dir, "npd-"+n), n)
			if err != nil {
				return err
			}
			p.NPD[n] = npd
			return npd.Start(ctx)
		}); err != nil {
			return nil, err
		}
	}

	tokenFile := filepath.Join(dir, "webhook-token")
	if err := os.WriteFile(tokenFile, []byte(p.Token+"\n"), 0o600); err != nil {
		return nil, err
	}
	for i := range o.Replicas {
		port, err := testenv.FreePort()
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("healer-%c", 'a'+i)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		p.Receivers = append(p.Receivers, &Receiver{Name: name, Addr: addr, URL: "http://" + addr,
			Log: filepath.Join(dir, "receiver-"+name+".log"), bin: o.Receiver, kubeconfig: p.Cluster.Kubeconfig})
	}
	if err := p.phase("Alertmanager (shipped alertmanager/alertmanager.yml)", func() error {
		cfg, err := alertmanagerConfig(p.Receivers[0].URL+"/webhook", tokenFile, o.GroupWait, o.GroupInterval)
		if err != nil {
			return err
		}
		amDir := filepath.Join(dir, "alertmanager")
		if err := os.MkdirAll(amDir, 0o755); err != nil {
			return err
		}
		p.Alertmanager, err = testenv.StartAlertmanager(ctx, amDir, cfg)
		return err
	}); err != nil {
		return nil, err
	}
	p.ReceiverConfig = filepath.Join(dir, "node-healer.yml")
	cfg := receiverConfig(&p.opts, p.Redis.URL(0), tokenFile, p.bmc.inventory, p.Alertmanager.URL)
	if err := os.WriteFile(p.ReceiverConfig, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	// The receiver's namespace and the node-exec pods' (node_exec.namespace default).
	for _, ns := range []string{"node-healer", "node-healer-exec"} {
		if err := p.Cluster.EnsureNamespace(ctx, ns); err != nil {
			return nil, err
		}
	}
	for _, r := range p.Receivers {
		r.config = p.ReceiverConfig
		if err := p.phase(fmt.Sprintf("node-healer replica %s (%s serve)", r.Name, filepath.Base(o.Receiver)), func() error {
			return r.start(ctx)
		}); err != nil {
			return nil, err
		}
	}
	promPhase := "Prometheus (shipped rules/node-healer.rules.yml)"
	if o.Shipped {
		promPhase = fmt.Sprintf("Prometheus (shipped rules; global scrape and evaluation %s, NPD scraped every %s)", o.ScrapeInterval, ShippedNPDInterval)
	}
	if err := p.phase(promPhase, func() error {
		npds := map[string]string{}
		for n, d := range p.NPD {
			npds[n] = d.Addr
		}
		var recv []string
		for _, r := range p.Receivers {
			recv = append(recv, r.Addr)
		}
		iv := intervals{scrape: o.ScrapeInterval, eval: time.Second}
		if o.Shipped {
			iv.eval, iv.npd = o.ScrapeInterval, ShippedNPDInterval
		}
		cfg, err := prometheusConfig(iv, npds, recv, strings.TrimPrefix(p.Alertmanager.URL, "http://"))
		if err != nil {
			return err
		}
		promDir := filepath.Join(dir, "prometheus")
		if err := os.MkdirAll(promDir, 0o755); err != nil {
			return err
		}
		p.Prometheus, err = testenv.StartPrometheus(ctx, promDir, cfg)
		return err
	}); err != nil {
		return nil, err
	}
	if err := p.phase("Prometheus scraping every target", func() error { return p.waitTargetsUp(ctx) }); err != nil {
		return nil, err
	}
	return p, nil
}

// waitTargetsUp waits until every scrape target has answered once.
func (p *Pipeline) waitTargetsUp(ctx context.Context) error {
	want := len(p.NPD) + len(p.Receivers)
	// Prometheus applies new targets after up to 5 s, then spreads the
	// first scrapes over one interval.
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second+2*p.opts.ScrapeInterval)
	defer cancel()
	for {
		s, err := p.Prometheus.Query(ctx, "up")
		up := 0
		for _, x := range s {
			if x.Value == 1 {
				up++
			}
		}
		if err == nil && up >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d targets up (%v): %w", up, want, err, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Stop stops every process the pipeline started and waits until they have
// exited. Safe to call twice.
func (p *Pipeline) Stop() {
	p.stopOnce.Do(func() {
		p.cancel()
		p.Prometheus.Stop()
		for _, r := range p.Receivers {
			r.Stop()
		}
		if p.Alertmanager != nil {
			p.Alertmanager.Stop()
		}
		p.bmc.stop()
		for _, n := range p.NPD {
			n.Stop()
		}
		if p.Cluster != nil {
			p.Cluster.Stop()
		}
		if p.Redis != nil {
			p.Redis.Stop()
		}
		if p.logFile != nil {
			p.logFile.Close()
		}
	})
}

// LogTails returns the last lines of every component's log, for a failed test.
func (p *Pipeline) LogTails(n int) string {
	var b strings.Builder
	for _, r := range p.Receivers {
		fmt.Fprintf(&b, "--- %s ---\n%s\n", r.Log, tail(r.Log, n))
	}
	if p.Alertmanager != nil {
		fmt.Fprintf(&b, "--- alertmanager ---\n%s\n", p.Alertmanager.LogTail(n))
	}
	if p.Prometheus != nil {
		fmt.Fprintf(&b, "--- prometheus ---\n%s\n", p.Prometheus.LogTail(n))
	}
	for name, d := range p.NPD {
		fmt.Fprintf(&b, "--- node-problem-detector %s ---\n%s\n", name, d.LogTail(n))
	}
	fmt.Fprintf(&b, "--- pipeline ---\n%s\n", tail(filepath.Join(p.Dir, "pipeline.log"), n))
	return b.String()
}

// createWorkload creates, per node, a ReplicaSet's pods and a PDB that
// allows their eviction (no disruption controller runs here, so its status
// is written by hand), and a StatefulSet pod on the last node.
func (p *Pipeline) createWorkload(ctx context.Context) error {
	if err := p.Cluster.EnsureNamespace(ctx, Namespace); err != nil {
		return err
	}
	for _, n := range p.Nodes {
		rs := "web-" + n
		if _, err := p.Cluster.CreateReplicaSetPods(ctx, Namespace, rs, n, p.opts.PodsPerNode); err != nil {
			return err
		}
		one := intstr.FromInt32(1)
		pdb := &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Name: rs, Namespace: Namespace},
			Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": rs}}},
		}
		if _, err := p.Cluster.Client.PolicyV1().PodDisruptionBudgets(Namespace).Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create PDB %s: %w", rs, err)
		}
		if err := p.setPDB(ctx, n, true); err != nil {
			return err
		}
	}
	last := p.Nodes[len(p.Nodes)-1]
	_, err := p.Cluster.CreatePod(ctx, Namespace, "db-0", last, func(pod *corev1.Pod) {
		pod.Labels = map[string]string{"app": "db"}
		pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", UID: "00000000-0000-0000-0000-0000000000db", Controller: ptr.To(true)}}
	})
	return err
}

// BlockDrain makes the node's PDB allow no disruption: evictions of its
// pods get 429 and the drain waits.
func (p *Pipeline) BlockDrain(ctx context.Context, node string) error {
	return p.setPDB(ctx, node, false)
}

// AllowDrain lets the node's pods be evicted again.
func (p *Pipeline) AllowDrain(ctx context.Context, node string) error {
	return p.setPDB(ctx, node, true)
}

func (p *Pipeline) setPDB(ctx context.Context, node string, allow bool) error {
	pdbs := p.Cluster.Client.PolicyV1().PodDisruptionBudgets(Namespace)
	var last error
	for range 20 {
		pdb, err := pdbs.Get(ctx, "web-"+node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		n := int32(p.opts.PodsPerNode)
		pdb.Status = policyv1.PodDisruptionBudgetStatus{ObservedGeneration: pdb.Generation, CurrentHealthy: n, DesiredHealthy: 1, ExpectedPods: n}
		if allow {
			// Generous: evictions decrement it, and nothing recomputes it.
			pdb.Status.CurrentHealthy, pdb.Status.ExpectedPods, pdb.Status.DisruptionsAllowed = 1000, 1000, 1000
		} else {
			pdb.Status.CurrentHealthy, pdb.Status.DesiredHealthy = 1, 1
		}
		if _, last = pdbs.UpdateStatus(ctx, pdb, metav1.UpdateOptions{}); last == nil {
			return nil
		}
	}
	return fmt.Errorf("PDB web-%s status: %w", node, last)
}

// phase runs f with a progress line.
func (p *Pipeline) phase(what string, f func() error) error {
	start := time.Now()
	fmt.Fprintf(p.opts.Progress, "%s… ", what)
	err := f()
	if err != nil {
		fmt.Fprintln(p.opts.Progress, "FAILED")
		return fmt.Errorf("%s: %w", what, err)
	}
	fmt.Fprintf(p.opts.Progress, "ok (%.1fs)\n", time.Since(start).Seconds())
	return nil
}

// logf writes a line to pipeline.log.
func (p *Pipeline) logf(format string, a ...any) {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	if p.logFile != nil {
		fmt.Fprintf(p.logFile, "%s %s\n", time.Now().Format(time.RFC3339Nano), fmt.Sprintf(format, a...))
	}
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
