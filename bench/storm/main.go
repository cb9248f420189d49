// Command storm measures an alert storm: 1,000 alerts for 100 nodes in one
// burst against the real receiver binary (redis-server, kube-apiserver,
// kwok, a Redfish simulator for every node). It reports the webhook's
// latency percentiles, the receiver's peak memory, the time until the
// blast-radius breaker opens, and counts destructive actions (cordons,
// evictions, BMC resets) — which must be zero beyond the limits.
//
//	go run ./bench/storm -receiver bin/receiver
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/node-healer/node-healer/bench/benchenv"
	"github.com/node-healer/node-healer/internal/bmcsim"
	"github.com/node-healer/node-healer/internal/testenv"
)

func main() {
	receiver := flag.String("receiver", "bin/receiver", "receiver binary")
	nodesN := flag.Int("nodes", 100, "kwok nodes")
	alertsN := flag.Int("alerts", 1000, "alerts in the burst")
	perReq := flag.Int("per-request", 1, "alerts per webhook request (Alertmanager max_alerts)")
	flag.Parse()
	if err := run(*receiver, *nodesN, *alertsN, *perReq); err != nil {
		fmt.Fprintln(os.Stderr, "storm:", err)
		os.Exit(1)
	}
}

func run(receiver string, nodesN, alertsN, perReq int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "storm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	r, err := testenv.StartRedis(dir)
	if err != nil {
		return err
	}
	defer r.Stop()
	var nodes []string
	for i := range nodesN {
		nodes = append(nodes, fmt.Sprintf("n%03d", i))
	}
	fmt.Fprintf(os.Stderr, "starting control plane with %d kwok nodes…\n", nodesN)
	cl, err := testenv.StartCluster(ctx, dir, testenv.ClusterOptions{Nodes: nodes})
	if err != nil {
		return err
	}
	defer cl.Stop()
	var systems []bmcsim.System
	for _, n := range nodes {
		systems = append(systems, bmcsim.System{ID: n})
	}
	sim, err := bmcsim.New(bmcsim.Options{Systems: systems, Username: "admin", Password: "pw"})
	if err != nil {
		return err
	}
	defer sim.Close()
	srv, _, err := sim.ServeTLS(dir, nodes) // dir/inventory.yml, with its CA and password
	if err != nil {
		return err
	}
	defer srv.Close()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("storm-token"), 0o600); err != nil {
		return err
	}
	// Shipped safety defaults (breaker 20 %, settle 5s, 1 run at a time,
	// 1 reboot per 10 minutes); every alert routes to the reboot runbook.
	cfg := fmt.Sprintf(`redis: {url: %q}
webhook: {auth: {bearer_token_file: token}}
bmc: {inventory_file: inventory.yml}
routes:
  - {name: reboot, matchers: ['alertname=~"Node.*"'], runbook: reboot}
`, r.URL(0))
	cfgFile := filepath.Join(dir, "node-healer.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(dir, "receiver.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	rcv, err := benchenv.StartReceiver(receiver, cfgFile, cl.Kubeconfig, logf)
	if err != nil {
		return err
	}
	defer rcv.Stop()
	cmd, base := rcv.Cmd, rcv.URL
	rss0 := vmHWM(cmd.Process.Pid)

	// The burst: alertsN alerts spread over the nodes (10 alert names).
	at := time.Now().UTC().Format(time.RFC3339)
	var bodies []string
	for i := 0; i < alertsN; i += perReq {
		var as []string
		for j := i; j < min(i+perReq, alertsN); j++ {
			as = append(as, fmt.Sprintf(`{"status":"firing","labels":{"alertname":"NodeStorm%d","node":%q,"node_healer":"true"},"annotations":{},"startsAt":%q,"endsAt":"0001-01-01T00:00:00Z","fingerprint":"storm%06d"}`,
				j%10, nodes[j%nodesN], at, j))
		}
		bodies = append(bodies, `{"version":"4","groupKey":"{}:{}","status":"firing","receiver":"node-healer","alerts":[`+strings.Join(as, ",")+`]}`)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, TLSClientConfig: &tls.Config{}}}
	lat := make([]time.Duration, len(bodies))
	codes := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan int)
	start := time.Now()
	for range 32 {
		wg.Go(func() {
			for i := range work {
				req, _ := http.NewRequest(http.MethodPost, base+"/webhook", strings.NewReader(bodies[i]))
				req.Header.Set("Authorization", "Bearer storm-token")
				t0 := time.Now()
				resp, err := client.Do(req)
				lat[i] = time.Since(t0)
				code := 0
				if err == nil {
					code = resp.StatusCode
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				mu.Lock()
				codes[code]++
				mu.Unlock()
			}
		})
	}
	for i := range bodies {
		work <- i
	}
	close(work)
	wg.Wait()
	burst := time.Since(start)
	var opened time.Duration
	for time.Since(start) < 60*time.Second {
		var st struct{ Breaker struct{ Open bool } }
		if resp, err := http.Get(base + "/api/v1/status"); err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		if st.Breaker.Open {
			opened = time.Since(start)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Give the workers time to act if they would (settle is 5s).
	time.Sleep(15 * time.Second)
	cordoned := 0
	nl, err := cl.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err == nil {
		for _, n := range nl.Items {
			if n.Spec.Unschedulable {
				cordoned++
			}
		}
	}
	resets := 0
	for _, n := range nodes {
		resets += len(sim.Resets(n))
	}
	var status map[string]any
	if resp, err := http.Get(base + "/api/v1/status"); err == nil {
		_ = json.NewDecoder(resp.Body).Decode(&status)
		resp.Body.Close()
	}
	deferred, _ := status["deferred"].([]any)
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*p))] }
	fmt.Printf("machine: %d cores\n", nprocs())
	fmt.Printf("burst: %d alerts for %d nodes in %d requests (%d alerts each), 32 concurrent senders\n", alertsN, nodesN, len(bodies), perReq)
	fmt.Printf("webhook: all sent in %s; status codes %v\n", burst.Round(time.Millisecond), codes)
	fmt.Printf("webhook latency: p50 %s  p90 %s  p99 %s  max %s\n", pct(0.50).Round(time.Microsecond), pct(0.90).Round(time.Microsecond), pct(0.99).Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond))
	fmt.Printf("receiver peak RSS (VmHWM): %s before the burst, %s after\n", rss0, vmHWM(cmd.Process.Pid))
	if opened > 0 {
		fmt.Printf("breaker open %s after the first request\n", opened.Round(time.Millisecond))
	} else {
		fmt.Printf("breaker did not open within 60s\n")
	}
	fmt.Printf("destructive actions 15s after the burst: %d nodes cordoned, %d BMC resets; %d runs deferred\n", cordoned, resets, len(deferred))
	if cordoned != 0 || resets != 0 {
		return fmt.Errorf("destructive actions happened beyond the limits")
	}
	return nil
}

func vmHWM(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:"))
		}
	}
	return "?"
}

func nprocs() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}
