// Package npd holds node-problem-detector configuration for node-healer; its
// tests run the real node-problem-detector (built by scripts/tools-prom.sh)
// against log files and sysfs trees they write.
package npd

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/testenv"
)

// The seed's kernel log lines, and what each must produce.
var kernelLines = []string{
	"task docker:1123 blocked for more than 120 seconds.",                                            // KernelDeadlock + TaskHung
	"eth0: Link is Up - 10Gbps/Full - flow control rx/tx",                                            // nothing
	"Out of memory: Kill process 1234 (java) score 0 or sacrifice child",                             // OOMKilling (old kernels, line 1)
	"Killed process 1234 (java) total-vm:2097152kB, anon-rss:1048576kB, file-rss:0kB, shmem-rss:0kB", // same OOM, line 2: not counted again
	"Memory cgroup out of memory: Killed process 5678 (python3) total-vm:812344kB, anon-rss:524288kB, file-rss:1024kB, shmem-rss:0kB, UID:1000 pgtables:1200kB oom_score_adj:999", // OOMKilling
	"EXT4-fs (sda1): Remounting filesystem read-only",                           // ReadonlyFilesystem
	"BUG: unable to handle kernel NULL pointer dereference at 0000000000000008", // KernelOops
	"Oops: 0002 [#1] SMP PTI",                                                   // KernelOops
	"task jbd2/sda1-8:312 blocked for more than 120 seconds.",                   // TaskHung only
}

var wantKernel = map[string]float64{
	`problem_gauge{reason="ContainerRuntimeHung",type="KernelDeadlock"}`:     1,
	`problem_gauge{reason="FilesystemIsReadOnly",type="ReadonlyFilesystem"}`: 1,
	`problem_gauge{reason="FilesystemShutDown",type="ReadonlyFilesystem"}`:   0,
	`problem_counter{reason="OOMKilling"}`:                                   2,
	`problem_counter{reason="TaskHung"}`:                                     2,
	`problem_counter{reason="KernelOops"}`:                                   2,
	`problem_counter{reason="ContainerRuntimeHung"}`:                         1,
}

func TestKernelMonitorWithRealNPD(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real node-problem-detector")
	}
	dir := t.TempDir()
	logPath := filepath.Join(dir, "kern.log")
	if err := os.WriteFile(logPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := rewriteConfig(t, "kernel-monitor-filelog.json", dir, func(c map[string]any) {
		c["logPath"] = logPath
	})

	npd := startNPD(t, dir, "--config.system-log-monitor="+cfg)
	// Before any log line: every rule's series exists at zero.
	npd.waitFor(t, map[string]float64{
		`problem_gauge{reason="ContainerRuntimeHung",type="KernelDeadlock"}`: 0,
		`problem_counter{reason="OOMKilling"}`:                               0,
	})

	f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i, msg := range kernelLines {
		// Traditional syslog kern.log format, as the filelog config parses it.
		line := fmt.Sprintf("%s n1 kernel: [%6d.%06d] %s\n",
			time.Now().Format("Jan _2 15:04:05"), 12345+i, 678901, msg)
		if _, err := f.WriteString(line); err != nil {
			t.Fatal(err)
		}
	}
	npd.waitFor(t, wantKernel)
}

// TestKernelMonitorVariantsAgree: the kmsg config (production) and the filelog
// config (tested above) must carry the same conditions and rules.
func TestKernelMonitorVariantsAgree(t *testing.T) {
	a, b := readJSON(t, "kernel-monitor.json"), readJSON(t, "kernel-monitor-filelog.json")
	for _, k := range []string{"conditions", "rules", "source", "lookback", "bufferSize", "metricsReporting"} {
		if !reflect.DeepEqual(a[k], b[k]) {
			t.Errorf("kernel-monitor.json and kernel-monitor-filelog.json differ in %q", k)
		}
	}
}

func TestNICPluginWithRealNPD(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real node-problem-detector")
	}
	dir := t.TempDir()
	sysfs := filepath.Join(dir, "sys")
	stats := filepath.Join(sysfs, "class", "net", "eth0", "statistics")
	for _, d := range []string{stats, filepath.Join(sysfs, "class", "net", "eth0", "device")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rxErrors := filepath.Join(stats, "rx_errors")
	writeFile(t, rxErrors, "0\n")
	script, err := filepath.Abs(filepath.Join("plugin", "check_nic_errors.sh"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := rewriteConfig(t, "nic-monitor.json", dir, func(c map[string]any) {
		c["pluginConfig"].(map[string]any)["invoke_interval"] = "1s"
		for _, r := range c["rules"].([]any) {
			r.(map[string]any)["path"] = script
		}
	})
	t.Setenv("SYSFS_ROOT", sysfs)
	t.Setenv("STATE_DIR", filepath.Join(dir, "state"))

	npd := startNPD(t, dir, "--config.custom-plugin-monitor="+cfg)
	gauge := `problem_gauge{reason="NICReceiveErrorsHigh",type="NICReceiveErrors"}`
	npd.waitFor(t, map[string]float64{gauge: 0})
	// Let the plugin record a baseline, then burst far past 10 errors/s.
	time.Sleep(2500 * time.Millisecond)
	if got := npd.scrape(t)[gauge]; got != 0 {
		t.Fatalf("%s = %v with no receive errors, want 0", gauge, got)
	}
	// A sustained error storm: the counter keeps climbing while we watch, so
	// every plugin run sees far more than 10 errors/s.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := 1; ; n++ {
			_ = os.WriteFile(rxErrors, []byte(strconv.Itoa(n*100000)+"\n"), 0o644)
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stop); <-done }()
	npd.waitFor(t, map[string]float64{gauge: 1})
	if got := npd.scrape(t)[`problem_counter{reason="NICReceiveErrorsHigh"}`]; got < 1 {
		t.Errorf(`problem_counter{reason="NICReceiveErrorsHigh"} = %v, want >= 1`, got)
	}
}

func TestSMARTPlugin(t *testing.T) {
	healthy := `smartctl 7.3
SMART overall-health self-assessment test result: PASSED
ID# ATTRIBUTE_NAME          FLAG     VALUE WORST THRESH TYPE      UPDATED  WHEN_FAILED RAW_VALUE
  5 Reallocated_Sector_Ct   0x0033   100   100   010    Pre-fail  Always       -       %s
197 Current_Pending_Sector  0x0012   100   100   000    Old_age   Always       -       %s
`
	cases := []struct {
		name string
		out  string
		want int
	}{
		{"healthy", fmt.Sprintf(healthy, "0", "0"), 0},
		{"few reallocated", fmt.Sprintf(healthy, "5", "0"), 0},
		{"many reallocated", fmt.Sprintf(healthy, "6", "0"), 1},
		{"pending", fmt.Sprintf(healthy, "0", "2"), 1},
		{"health failed", "SMART overall-health self-assessment test result: FAILED!\n", 1},
		{"scsi failure", "SMART Health Status: HARDWARE IMPENDING FAILURE GENERAL HARD DRIVE FAILURE\n", 1},
		{"scsi ok", "SMART Health Status: OK\n", 0},
	}
	script, err := filepath.Abs(filepath.Join("plugin", "check_smart.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "out.txt"), c.out)
			fake := filepath.Join(dir, "smartctl")
			writeFile(t, fake, "#!/bin/sh\nif [ \"$1\" = --scan ]; then echo '/dev/sda -d sat # /dev/sda'; exit 0; fi\ncat "+filepath.Join(dir, "out.txt")+"\n")
			if err := os.Chmod(fake, 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(script)
			cmd.Env = append(os.Environ(), "SMARTCTL="+fake)
			out, err := cmd.CombinedOutput()
			if got := cmd.ProcessState.ExitCode(); got != c.want {
				t.Errorf("exit %d (%v), want %d; output: %s", got, err, c.want, out)
			}
			if len(out) > 80 {
				t.Errorf("output %q longer than the monitor's max_output_length 80", out)
			}
		})
	}
	t.Run("no smartctl", func(t *testing.T) {
		cmd := exec.Command(script)
		cmd.Env = append(os.Environ(), "SMARTCTL=/nonexistent/smartctl")
		out, _ := cmd.CombinedOutput()
		if got := cmd.ProcessState.ExitCode(); got != 2 {
			t.Errorf("exit %d, want 2 (unknown); output: %s", got, out)
		}
	})
}

// TestConfigsAreValidJSON covers the configs no other test loads into NPD.
func TestConfigsAreValidJSON(t *testing.T) {
	files, err := filepath.Glob("*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no configs: %v", err)
	}
	for _, f := range files {
		c := readJSON(t, f)
		for _, k := range []string{"plugin", "source", "conditions", "rules"} {
			if _, ok := c[k]; !ok {
				t.Errorf("%s: missing %q", f, k)
			}
		}
	}
}

type npdProcess struct {
	url string
	log string
}

func startNPD(t *testing.T, dir string, monitorFlags ...string) *npdProcess {
	t.Helper()
	bin, err := testenv.ToolPath("node-problem-detector")
	if err != nil {
		t.Fatal(err)
	}
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "npd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{
		"--enable-k8s-exporter=false",
		"--hostname-override=n1",
		"--port=0",
		"--prometheus-address=127.0.0.1",
		"--prometheus-port=" + strconv.Itoa(port),
		"--logtostderr",
		"--v=4",
	}, monitorFlags...)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start node-problem-detector: %v", err)
	}
	p := &npdProcess{url: fmt.Sprintf("http://127.0.0.1:%d/metrics", port), log: logPath}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("node-problem-detector log:\n%s", tail(string(b), 60))
		}
	})
	return p
}

// waitFor polls /metrics until every wanted series has its value (30 s bound).
func (p *npdProcess) waitFor(t *testing.T, want map[string]float64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var got map[string]float64
	var err error
	for time.Now().Before(deadline) {
		got, err = p.get()
		if err == nil && matches(got, want) {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("metrics at %s did not reach the wanted values within 30 s (last error: %v)\nwant:\n%s\ngot (problem_*):\n%s",
		p.url, err, format(want), format(filter(got, "problem_")))
}

func (p *npdProcess) scrape(t *testing.T) map[string]float64 {
	t.Helper()
	m, err := p.get()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (p *npdProcess) get() (map[string]float64, error) {
	resp, err := http.Get(p.url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", p.url, resp.Status)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics reads the Prometheus text format into "name{sorted labels}" →
// value. Enough for NPD's output (no escaped quotes in label values).
func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("bad metrics line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("bad value in %q: %w", line, err)
		}
		out[canonical(line[:i])] = v
	}
	return out, s.Err()
}

// canonical sorts a series' labels: name{b="2",a="1"} → name{a="1",b="2"}.
func canonical(series string) string {
	open := strings.IndexByte(series, '{')
	if open < 0 {
		return series
	}
	body := strings.TrimSuffix(series[open+1:], "}")
	var pairs []string
	for _, p := range strings.Split(body, `",`) {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !strings.HasSuffix(p, `"`) {
			p += `"`
		}
		pairs = append(pairs, p)
	}
	sort.Strings(pairs)
	return series[:open] + "{" + strings.Join(pairs, ",") + "}"
}

func matches(got, want map[string]float64) bool {
	for k, v := range want {
		g, ok := got[canonical(k)]
		if !ok || g != v {
			return false
		}
	}
	return true
}

func filter(m map[string]float64, prefix string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			out[k] = v
		}
	}
	return out
}

func format(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s %v\n", k, m[k])
	}
	return b.String()
}

func rewriteConfig(t *testing.T, name, dir string, edit func(map[string]any)) string {
	t.Helper()
	c := readJSON(t, name)
	edit(c)
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	writeFile(t, p, string(b))
	return p
}

func readJSON(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return c
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
