// Command webhookload measures the webhook under a fixed request rate with
// vegeta (open loop: latency includes queueing, unlike a closed-loop
// benchmark). It starts redis-server, a control plane with kwok nodes and
// the receiver binary, then attacks POST /webhook with distinct alerts.
//
//	go run ./bench/webhookload -vegeta .cache/tools/bin/vegeta -receiver bin/receiver
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/node-healer/node-healer/bench/benchenv"
	"github.com/node-healer/node-healer/internal/testenv"
)

func main() {
	vegeta := flag.String("vegeta", ".cache/tools/bin/vegeta", "vegeta binary")
	receiver := flag.String("receiver", "bin/receiver", "receiver binary")
	duration := flag.Duration("duration", 10*time.Second, "attack duration per scenario")
	flag.Parse()
	if err := run(*vegeta, *receiver, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "webhookload:", err)
		os.Exit(1)
	}
}

type scenario struct {
	name   string
	rate   int // requests per second
	alerts int // alerts per payload
}

func run(vegeta, receiver string, d time.Duration) error {
	dir, err := os.MkdirTemp("", "webhookload-")
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
	for i := range 10 {
		nodes = append(nodes, fmt.Sprintf("n%d", i))
	}
	ctx := context.Background()
	cl, err := testenv.StartCluster(ctx, dir, testenv.ClusterOptions{Nodes: nodes, Progress: os.Stderr})
	if err != nil {
		return err
	}
	defer cl.Stop()
	_ = os.WriteFile(filepath.Join(dir, "token"), []byte("bench-token"), 0o600)
	// dry_run: the workers still read, lock and record every run, but the
	// cluster is not changed, so the nodes stay routable for every alert.
	cfg := fmt.Sprintf(`redis: {url: %q}
webhook: {auth: {bearer_token_file: token}}
routes:
  - {name: deadlock, matchers: ['alertname="NodeKernelDeadlock"'], runbook: cordon, dry_run: true}
`, r.URL(0))
	cfgFile := filepath.Join(dir, "node-healer.yml")
	_ = os.WriteFile(cfgFile, []byte(cfg), 0o600)
	rcv, err := benchenv.StartReceiver(receiver, cfgFile, cl.Kubeconfig, os.Stderr, "--log.level=warn")
	if err != nil {
		return err
	}
	defer rcv.Stop()
	for _, s := range []scenario{{"1 alert per payload", 2000, 1}, {"100 alerts per payload", 50, 100}} {
		targets := filepath.Join(dir, "targets.json")
		n := s.rate * int(d.Seconds())
		if err := writeTargets(targets, rcv.URL+"/webhook", s, n); err != nil {
			return err
		}
		fmt.Printf("\n== %s at %d req/s for %s (%d alerts/s)\n", s.name, s.rate, d, s.rate*s.alerts)
		sh := fmt.Sprintf("%s attack -format=json -targets=%s -rate=%d/s -duration=%s -max-workers=64 | %s report", vegeta, targets, s.rate, d, vegeta)
		c := exec.Command("bash", "-o", "pipefail", "-c", sh)
		c.Stdout, c.Stderr = os.Stdout, os.Stderr
		if err := c.Run(); err != nil {
			return fmt.Errorf("vegeta: %w", err)
		}
	}
	return nil
}

var seq int

func writeTargets(path, url string, s scenario, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	at := time.Now().UTC().Format(time.RFC3339)
	for range n {
		alerts := make([]string, s.alerts)
		for j := range alerts {
			seq++
			alerts[j] = fmt.Sprintf(`{"status":"firing","labels":{"alertname":"NodeKernelDeadlock","node":"n%d","severity":"critical"},"annotations":{},"startsAt":%q,"endsAt":"0001-01-01T00:00:00Z","fingerprint":"%016x"}`, seq%10, at, seq)
		}
		body := `{"version":"4","groupKey":"{}:{}","status":"firing","receiver":"node-healer","alerts":[` + strings.Join(alerts, ",") + `]}`
		t := map[string]any{"method": "POST", "url": url, "body": []byte(body),
			"header": map[string][]string{"Authorization": {"Bearer bench-token"}, "Content-Type": {"application/json"}}}
		if err := json.NewEncoder(w).Encode(t); err != nil {
			return err
		}
	}
	return w.Flush()
}
