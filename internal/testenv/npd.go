package testenv

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// KernelLogTime is the syslog timestamp layout of a kern.log line, the one
// deploy/npd/kernel-monitor-filelog.json parses.
const KernelLogTime = "Jan _2 15:04:05"

// NPD is a real node-problem-detector for one node, reading its own kernel
// log file (the file-log kernel monitor from deploy/npd with logPath
// rewritten), with the Kubernetes exporter off and its Prometheus exporter
// on a fixed loopback port, so a scrape target survives restarts.
type NPD struct {
	Node string
	// Addr is the exporter's host:port; MetricsURL its /metrics.
	Addr, MetricsURL string
	// KernLog is the log file the monitor reads.
	KernLog string

	dir, bin, cfg string
	port          int
	http          *http.Client

	mu     sync.Mutex
	p      *proc
	uptime float64 // the fake kernel's clock for [seconds.micros]

	// apiserver, when set (ExportTo), turns NPD's Kubernetes exporter on:
	// it writes its conditions on the Node, with heartbeats.
	apiserver string
}

// ExportTo makes the next Start run NPD's Kubernetes exporter against the
// API server at host with kubeconfig's credentials, as the DaemonSet does
// in a cluster: its conditions (KernelDeadlock, ReadonlyFilesystem) appear
// on the Node, set to False with a fresh lastHeartbeatTime when it starts.
func (n *NPD) ExportTo(host, kubeconfig string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.apiserver = host + "?inClusterConfig=false&auth=" + kubeconfig
}

// NewNPD prepares (but does not start) a node-problem-detector for node
// in dir: an empty kern.log, the kernel monitor config pointing at it,
// and a free port.
func NewNPD(dir, node string) (*NPD, error) {
	bin, err := ToolPath("node-problem-detector")
	if err != nil {
		return nil, err
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "npd", "kernel-monitor-filelog.json"))
	if err != nil {
		return nil, err
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("kernel-monitor-filelog.json: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	n := &NPD{Node: node, KernLog: filepath.Join(dir, "kern.log"), dir: dir, bin: bin,
		cfg: filepath.Join(dir, "kernel-monitor.json"), http: &http.Client{Timeout: 2 * time.Second}, uptime: 1000}
	c["logPath"] = n.KernLog
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(n.cfg, b, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(n.KernLog, nil, 0o644); err != nil {
		return nil, err
	}
	if n.port, err = FreePort(); err != nil {
		return nil, err
	}
	n.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port))
	n.MetricsURL = "http://" + n.Addr + "/metrics"
	return n, nil
}

// Start starts the process unless it runs, and waits until its exporter
// serves the KernelDeadlock gauge (the monitor is loaded).
func (n *NPD) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.p != nil && !n.p.exited() {
		return nil
	}
	args := []string{
		"--config.system-log-monitor=" + n.cfg,
		"--enable-k8s-exporter=false",
		"--hostname-override=" + n.Node,
		"--port=0",
		"--prometheus-address=127.0.0.1",
		"--prometheus-port=" + strconv.Itoa(n.port),
		"--logtostderr",
	}
	if n.apiserver != "" {
		args[1] = "--enable-k8s-exporter=true"
		args = append(args, "--apiserver-override="+n.apiserver)
	}
	p, err := startProc("node-problem-detector", n.bin, args, filepath.Join(n.dir, "npd.log"))
	if err != nil {
		return err
	}
	if err := p.waitUntil(ctx, 30*time.Second, func(ctx context.Context) error {
		return httpOK(ctx, n.http, n.MetricsURL, "", `problem_gauge{reason="ContainerRuntimeHung",type="KernelDeadlock"}`)
	}); err != nil {
		p.stop(5 * time.Second)
		return err
	}
	n.p = p
	return nil
}

// Stop stops the process (SIGTERM, killed after 5 s). Safe when stopped.
func (n *NPD) Stop() {
	n.mu.Lock()
	p := n.p
	n.p = nil
	n.mu.Unlock()
	p.stop(5 * time.Second)
}

// Running reports whether the process runs.
func (n *NPD) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.p != nil && !n.p.exited()
}

// Write appends one kernel message to kern.log in the syslog format the
// monitor parses, e.g. "Nov 26 21:04:05 node-1 kernel: [ 1012.000000] msg",
// and returns the time it was written.
func (n *NPD) Write(msg string) (time.Time, error) {
	n.mu.Lock()
	n.uptime += 12.345678
	up := n.uptime
	n.mu.Unlock()
	f, err := os.OpenFile(n.KernLog, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return time.Time{}, err
	}
	now := time.Now()
	line := fmt.Sprintf("%s %s kernel: [%12.6f] %s\n", now.Format(KernelLogTime), n.Node, up, msg)
	_, err = f.WriteString(line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return now, err
}

// Truncate empties kern.log: a new boot, a new kernel log.
func (n *NPD) Truncate() error {
	n.mu.Lock()
	n.uptime = 1000
	n.mu.Unlock()
	return os.Truncate(n.KernLog, 0)
}

// Gauge returns problem_gauge{type=typ} as the exporter serves it now: the
// highest value over reasons (1 when the condition is set).
func (n *NPD) Gauge(ctx context.Context, typ string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.MetricsURL, nil)
	if err != nil {
		return 0, err
	}
	resp, err := n.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	best := 0.0
	want := `type="` + typ + `"`
	s := bufio.NewScanner(resp.Body)
	for s.Scan() {
		l := s.Text()
		if !strings.HasPrefix(l, "problem_gauge{") || !strings.Contains(l, want) {
			continue
		}
		f := strings.Fields(l)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil && v > best {
			best = v
		}
	}
	return best, s.Err()
}

// LogTail returns the last n lines of the process's log.
func (n *NPD) LogTail(lines int) string {
	return tailFile(filepath.Join(n.dir, "npd.log"), lines)
}
